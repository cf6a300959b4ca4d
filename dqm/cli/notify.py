"""Messages published by hand, as data transfer does: ``dqm notify run-start|file-ready|run-end``
(operators, integration)."""

from __future__ import annotations

from typing import Any

import click

from dqm.cli.base import CliContext, cli, pass_cli_ctx
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID


@cli.group("notify")
def notify_group() -> None:
    """Publish a message by hand, as data transfer does (operators, integration)."""


def _publish(cli_ctx: CliContext, type_: str, **fields: Any) -> None:
    from dqm import broker, messages

    message = messages.make(type_, **fields)
    broker.publish(cli_ctx.settings, message)
    click.echo(f"published {type_} for run {message.run_id} (message {message.message_id}).")


@notify_group.command("run-start")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--type", "run_type", required=True, help="physics, calibration, laser or random.")
@click.option(
    "--start", "start_time", default="now", show_default=True, help="Start time, ISO 8601."
)
@click.option("--detector", default="CD", show_default=True, help="Detector name.")
@click.option("--source", default=None, help="Calibration source.")
@click.option("--source-z", "source_z_mm", type=float, default=None, help="Source position, mm.")
@click.option("--comment", default=None, help="Free text.")
@pass_cli_ctx
def notify_run_start(cli_ctx: CliContext, /, start_time: str, **fields: Any) -> None:
    """Announce that run RUN_ID started."""
    from dqm.times import parse_time

    _publish(cli_ctx, "run_start", start_time=parse_time(start_time, what="start time"), **fields)


@notify_group.command("file-ready")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.argument("seq", type=click.IntRange(0, MAX_ID))
@click.argument("uri")
@click.option("--size", type=click.IntRange(0, MAX_ID), default=None, help="Bytes [from the file].")
@click.option("--checksum", default=None, help="adler32, 8 hex digits [from the file].")
@click.option(
    "--events",
    "n_events",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="Events [from the file].",
)
@pass_cli_ctx
def notify_file_ready(
    cli_ctx: CliContext,
    run_id: int,
    seq: int,
    uri: str,
    size: int | None,
    checksum: str | None,
    n_events: int | None,
) -> None:
    """Announce that file SEQ of run RUN_ID is at URI (size, checksum and events read from it if not given)."""
    from pathlib import Path

    from dqm import rawformat

    path = Path(uri.removeprefix("file://"))
    if size is None or checksum is None or n_events is None:
        if not path.is_file():
            raise InvalidValueError(
                f"{uri} is not a local file; give --size, --checksum and --events."
            )
        size = path.stat().st_size if size is None else size
        checksum = rawformat.adler32_file(path) if checksum is None else checksum
        if n_events is None:
            import uproot

            try:
                with uproot.open(path) as file:
                    n_events = int(rawformat.check_events_tree(file, path).num_entries)
            except rawformat.RawFormatError:
                raise
            except Exception as exc:  # noqa: BLE001 - uproot raises many kinds for a non-ROOT file
                raise InvalidValueError(
                    f"{uri} cannot be read as ROOT ({type(exc).__name__}); give --events."
                ) from None
    _publish(
        cli_ctx,
        "file_ready",
        run_id=run_id,
        seq=seq,
        uri=uri,
        size=size,
        checksum=checksum,
        n_events=n_events,
    )


@notify_group.command("run-end")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--end", "end_time", default="now", show_default=True, help="End time, ISO 8601.")
@click.option(
    "--files", "n_files", type=click.IntRange(0, MAX_ID), required=True, help="Files of the run."
)
@click.option(
    "--events", "n_events", type=click.IntRange(0, MAX_ID), required=True, help="Events of the run."
)
@pass_cli_ctx
def notify_run_end(cli_ctx: CliContext, /, end_time: str, **fields: Any) -> None:
    """Announce that run RUN_ID ended."""
    from dqm.times import parse_time

    _publish(cli_ctx, "run_end", end_time=parse_time(end_time, what="end time"), **fields)
