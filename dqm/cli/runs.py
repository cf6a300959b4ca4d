"""Runs by hand and their results: ``dqm runs``, ``dqm run add|set|show|delete``, ``dqm export``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dqm.cli.base import EXIT_FAILURE, CliContext, cli, fail, pass_cli_ctx, print_table
from dqm.config import DEFAULT_REC_METHOD, REC_METHODS
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID, run_attributes
from dqm.states import RunStatus, parse_run_status
from dqm.times import parse_time


def _status_option(value: str | None) -> RunStatus | None:
    return None if value is None else parse_run_status(value)


STATUS_HELP = (
    "Run status: "
    + ", ".join(f"'{s.value}'" for s in RunStatus)
    + " (any case; - or _ for spaces)."
)


@cli.command("runs")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_ID),
    default=None,
    help="At most N runs (default 50 unless --days).",
)
@click.option(
    "--days", type=click.FloatRange(min=0), default=None, help="Runs active in the last N days."
)
@click.option("--status", "status", default=None, help=STATUS_HELP)
@click.option("--type", "run_type", default=None, help="Only runs of this run type.")
@click.option("--completed", is_flag=True, help="Only runs whose processing has finished.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def runs_command(
    cli_ctx: CliContext,
    limit: int | None,
    days: float | None,
    status: str | None,
    run_type: str | None,
    completed: bool,
    as_json: bool,
) -> None:
    """List recent runs with their status, the running ones first, then by end time."""
    wanted_status = _status_option(status)
    if limit is None and days is None:
        limit = 50
    with transaction(cli_ctx.database()) as session:
        runs = queries.recent_runs(
            session,
            limit=limit,
            days=days,
            status=wanted_status,
            run_type=run_type,
            completed=completed,
        )
        rows = [run_attributes(run) for run in runs]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runs match.")
        return
    print_table(
        rows,
        [
            ("run_id", "run"),
            ("run_type", "type"),
            ("status", "status"),
            ("start_time", "start (UTC)"),
            ("end_time", "end (UTC)"),
            ("n_events", "events"),
            ("n_files", "files"),
        ],
    )


@cli.group("run")
def run_group() -> None:
    """Add, change, show or delete a run by hand."""


def _run_options(required_type: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options shared by ``run add`` and ``run set``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--type",
                "run_type",
                required=required_type,
                help="Run type (physics, laser, calibration, random, ...).",
            ),
            click.option(
                "--detector", default=None, help="Detector name (default CD, the central detector)."
            ),
            click.option(
                "--start",
                "start_time",
                default=None,
                help="Start time, ISO 8601 (UTC unless an offset is given).",
            ),
            click.option("--end", "end_time", default=None, help="End time, ISO 8601."),
            click.option("--status", default=None, help=STATUS_HELP),
            click.option(
                "--events",
                "n_events",
                type=click.IntRange(0, MAX_ID),
                default=None,
                help="Number of events.",
            ),
            click.option(
                "--files",
                "n_files",
                type=click.IntRange(0, MAX_ID),
                default=None,
                help="Number of raw files.",
            ),
            click.option(
                "--sampling",
                "sampling_fraction",
                type=click.FloatRange(0, 1, min_open=True),
                default=None,
                help="Event sampling fraction in (0, 1].",
            ),
            click.option(
                "--rec-method",
                type=click.Choice(REC_METHODS),
                default=None,
                help=f"Reconstruction method (default {DEFAULT_REC_METHOD}).",
            ),
            click.option("--comment", default=None, help="Free text."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _parsed(values: dict[str, Any]) -> dict[str, Any]:
    """The options given, with their times parsed here, once (naive UTC datetimes)."""
    return {
        key: parse_time(value, what=key.replace("_", " ")) if key in TIME_OPTIONS else value
        for key, value in values.items()
    }


#: The run options that are times.
TIME_OPTIONS = ("start_time", "end_time")


@run_group.command("add")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@_run_options(required_type=True)
@pass_cli_ctx
def run_add(cli_ctx: CliContext, /, run_id: int, **options: Any) -> None:
    """Record a new run RUN_ID (start time defaults to now)."""
    values = _given(**options)
    values.setdefault("start_time", "now")
    with transaction(cli_ctx.database()) as session:
        run = queries.add_run(session, run_id=run_id, **_parsed(values))
        click.echo(f"added run {run.run_id} ({run.run_type}, {run.status.value}).")


@run_group.command("set")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@_run_options(required_type=False)
@pass_cli_ctx
def run_set(cli_ctx: CliContext, /, run_id: int, **options: Any) -> None:
    """Change attributes of run RUN_ID (only the options given)."""
    values = _given(**options)
    if not values:
        raise InvalidValueError(
            "nothing to change; give at least one option (see 'dqm run set --help')."
        )
    with transaction(cli_ctx.database()) as session:
        run = queries.update_run(session, run_id=run_id, **_parsed(values))
        click.echo(
            f"run {run.run_id}: " + ", ".join(f"{key}={values[key]}" for key in values) + "."
        )


@run_group.command("show")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def run_show(cli_ctx: CliContext, run_id: int, as_json: bool) -> None:
    """Show run RUN_ID with its files."""
    with transaction(cli_ctx.database()) as session:
        run = queries.get_run(session, run_id=run_id)
        info = run_attributes(run)
        info["tags"] = queries.run_tags(session, run_id=run_id)
        info["files"] = [
            {
                "seq": f.seq,
                "uri": f.uri,
                "state": f.state.value,
                "n_events": f.n_events,
                "size": f.size,
            }
            for f in queries.files_of_run(session, run_id=run_id)
        ]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "tags":
            click.echo(f"{key:<18} {' '.join(value)}")
        elif key != "files":
            click.echo(f"{key:<18} {'' if value is None else value}")
    click.echo(f"{'files':<18} {len(info['files'])}")
    for f in info["files"]:
        click.echo(f"  {f['seq']:>5}  {f['state']:<10}  {f['uri']}")


@run_group.command("tag")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.argument("tags", nargs=-1, required=True)
@pass_cli_ctx
def run_tag(cli_ctx: CliContext, /, run_id: int, tags: tuple[str, ...]) -> None:
    """Add TAGS to run RUN_ID (words such as messy, bad, ramp_up); recorded in the changes."""
    with transaction(cli_ctx.database()) as session:
        now = queries.change_run_tags(session, run_id=run_id, add=tags, user=cli_ctx.user)
    click.echo(f"run {run_id} tags: {' '.join(now) or '(none)'}.")


@run_group.command("untag")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.argument("tags", nargs=-1, required=True)
@pass_cli_ctx
def run_untag(cli_ctx: CliContext, /, run_id: int, tags: tuple[str, ...]) -> None:
    """Remove TAGS from run RUN_ID; recorded in the changes."""
    with transaction(cli_ctx.database()) as session:
        now = queries.change_run_tags(session, run_id=run_id, remove=tags, user=cli_ctx.user)
    click.echo(f"run {run_id} tags: {' '.join(now) or '(none)'}.")


@run_group.command("delete")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli_ctx
def run_delete(cli_ctx: CliContext, run_id: int, yes: bool) -> None:
    """Delete run RUN_ID with its files, jobs, histograms and PMT statistics."""
    url = cli_ctx.database()
    with transaction(url) as session:
        run = queries.get_run(session, run_id=run_id)
        n_files = len(run.files)
    if not yes:
        try:
            confirmed = click.confirm(
                f"Delete run {run_id} with its {n_files} file(s) and all their results?",
                default=False,
            )
        except click.Abort:  # no terminal to answer on (end of input)
            confirmed = False
        if not confirmed:
            fail(
                f"run {run_id} not deleted: not confirmed (add --yes to delete without asking).",
                EXIT_FAILURE,
            )
    with transaction(url) as session:
        queries.delete_run(session, run_id=run_id)
    click.echo(f"deleted run {run_id}.")


# --- export ------------------------------------------------------------------------------------


@cli.command("export")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ROOT file to write, replaced if it exists [run<RUN_ID>.root].",
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="STAGE",
    help="Only the histograms of this stage, e.g. calib or rec (repeatable; default: all).",
)
@pass_cli_ctx
def export_command(
    cli_ctx: CliContext, run_id: int, output: Path | None, stages: tuple[str, ...]
) -> None:
    """Write the histograms and PMT statistics of run RUN_ID to a ROOT file.

    One directory per stage with a TH1D/TH2D per histogram, the tree pmt_stats (one entry per
    PMT: its sums, hit rate, mean charge, mean hit time and dark rate) and run_info (the run and
    the provenance, JSON in a TObjString).
    """
    from dqm import rootexport

    path = output if output is not None else Path(f"run{run_id}.root")
    with transaction(cli_ctx.database()) as session:
        rootexport.check_output_path(path)
        export = rootexport.collect_run(session, run_id, stages=stages or None)
    rootexport.write_root(export, path)
    stage_names = ", ".join(sorted({h.stage for h in export.histograms}))
    pmts = f" and {export.n_pmts:,} PMTs" if export.pmt_columns is not None else ""
    no_pmts = " (no PMT statistics are stored)" if export.pmt_columns is None else ""
    click.echo(
        f"wrote {len(export.histograms)} histogram{'' if len(export.histograms) == 1 else 's'} "
        f"({stage_names}){pmts} of run {run_id} "
        f"to {path}{no_pmts}."
    )


@cli.command("report")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="The HTML file to write (default: runRUN_ID.html here).",
)
@pass_cli_ctx
def report_command(cli_ctx: CliContext, run_id: int, output: Path | None) -> None:
    """Write run RUN_ID's report: one self-contained HTML file (status, quality, sign-off, every
    check, the key histograms against the reference, the analyses with their trend, the PMT
    changes, the processing and the provenance)."""
    from dqm.report import run_report

    output = output or Path(f"run{run_id}.html")
    with transaction(cli_ctx.database()) as session:
        text = run_report(session, run_id=run_id)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidValueError(f"cannot write {output}: {exc.strerror or exc}.") from None
    click.echo(f"run {run_id}: report written to {output} ({len(text) / 1e6:.1f} MB).")
