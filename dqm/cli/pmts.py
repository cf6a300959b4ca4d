"""The PMTs over runs and the PMT masks: ``dqm pmt history|changes`` and
``dqm mask list|show|derive|edit``.

The command line acts as the installation's admin (see :mod:`dqm.cli.certification`); every new
mask version is recorded as a change with the user's name.
"""

from __future__ import annotations

import json
from typing import Any

import click

from dqm import pmtstatus
from dqm.cli.base import CliContext, cli, pass_cli_ctx, print_table
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import NotFoundError
from dqm.messages import RUN_TYPES
from dqm.runs import MAX_ID
from dqm.times import format_time


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


@cli.group("pmt")
def pmt_group() -> None:
    """One PMT over runs, and what changed in a run."""


@pmt_group.command("history")
@click.argument("pmt_text", metavar="PMT_ID")
@click.option(
    "--type", "run_type", type=click.Choice(RUN_TYPES), default=None, help="Only this run type."
)
@click.option(
    "--limit", type=click.IntRange(1, MAX_ID), default=100, show_default=True, help="Latest runs."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def history_command(
    cli_ctx: CliContext, pmt_text: str, run_type: str | None, limit: int, as_json: bool
) -> None:
    """A PMT's hit rate, dark rate, gain and status in each run, and when it was first dead."""
    pmt = pmtstatus.parse_pmt_id(pmt_text)
    with transaction(cli_ctx.database()) as session:
        rows = queries.pmt_history(session, pmt_id=pmt, run_type=run_type, limit=limit)
        first_dead = queries.first_dead_run(session, pmt_id=pmt)
    table: list[dict[str, Any]] = [
        {
            "run": r.run_id,
            "run_type": r.run_type,
            "start": format_time(r.start_time) if r.start_time else "",
            "hit_rate": r.hit_rate,
            "dark_rate_hz": r.dark_rate_hz,
            "signal_charge_pe": r.signal_charge_pe,
            "gain_adc_per_pe": r.gain_adc_per_pe,
            "calibration_version": r.calibration_version,
            "status": r.status,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps({"pmt": pmt, "first_dead_run": first_dead, "runs": table}, indent=2))
        return
    print_table(
        [
            {
                **r,
                "hit_rate": _number(r["hit_rate"]),
                "dark_rate_hz": _number(r["dark_rate_hz"]),
                "signal_charge_pe": _number(r["signal_charge_pe"], 3),
                "gain_adc_per_pe": _number(r["gain_adc_per_pe"]),
            }
            for r in table
        ],
        [
            ("run", "run"),
            ("run_type", "type"),
            ("status", "status"),
            ("hit_rate", "hit rate"),
            ("dark_rate_hz", "dark rate [Hz]"),
            ("signal_charge_pe", "charge/hit [PE]"),
            ("gain_adc_per_pe", "gain [ADC/PE]"),
            ("calibration_version", "calibration"),
        ],
    )
    dead = f"first dead in run {first_dead}" if first_dead is not None else "never seen dead"
    click.echo(f"PMT {pmt}: {len(table)} run(s); {dead}.")


@pmt_group.command("changes")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def changes_command(cli_ctx: CliContext, run_id: int, as_json: bool) -> None:
    """The PMTs newly dead, hot or noisy in RUN_ID, and those recovered, since the previous run
    of its type."""
    with transaction(cli_ctx.database()) as session:
        queries.get_run(session, run_id=run_id)
        found = queries.pmt_changes(session, run_id=run_id)
        if found is None:
            raise NotFoundError(f"run {run_id} has no PMT status yet: its files are not merged.")
        current, previous, changes = found
        counts = {"dead": current.n_dead, "hot": current.n_hot, "noisy": current.n_noisy}
        previous_run = previous.run_id if previous is not None else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run": run_id,
                    "previous_run": previous_run,
                    "counts": counts,
                    "changes": {
                        change: [pmt for c, pmt in changes.rows() if c == change]
                        for change in changes.counts()
                    }
                    if changes is not None
                    else None,
                },
                indent=2,
            )
        )
        return
    click.echo(f"run {run_id}: " + ", ".join(f"{n} {name}" for name, n in counts.items()) + ".")
    if changes is None:
        click.echo("no earlier run of its type has a PMT status: nothing to compare.")
        return
    click.echo(f"since run {previous_run}:")
    for change, n in changes.counts().items():
        ids = [pmt for c, pmt in changes.rows() if c == change]
        click.echo(f"  {change}: {n}" + (f" ({pmtstatus.format_pmt_ids(ids, 20)})" if n else ""))


@cli.group("mask")
def mask_group() -> None:
    """Versions of the PMT mask: the PMTs reconstruction leaves out, valid from a run on."""


def _mask_row(mask: Any) -> dict[str, Any]:
    row = queries.mask_summary(mask)
    return {**row, "created_at": format_time(row["created_at"])}


_MASK_COLUMNS = [
    ("version", "version"),
    ("valid_from_run", "valid from run"),
    ("n_masked", "PMTs"),
    ("how", "made"),
    ("created_by", "by"),
    ("created_at", "at (UTC)"),
    ("comment", "comment"),
]


@mask_group.command("list")
@pass_cli_ctx
def mask_list_command(cli_ctx: CliContext) -> None:
    """Every version of the mask."""
    with transaction(cli_ctx.database()) as session:
        rows = [_mask_row(m) for m in queries.list_pmt_masks(session)]
    if not rows:
        click.echo("no PMT mask yet: reconstruction uses every PMT.")
        return
    print_table(rows, _MASK_COLUMNS)


@mask_group.command("show")
@click.argument("version", type=click.IntRange(1, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def mask_show_command(cli_ctx: CliContext, version: int, as_json: bool) -> None:
    """A version of the mask and its PMTs."""
    with transaction(cli_ctx.database()) as session:
        mask = queries.get_pmt_mask(session, version=version)
        row = _mask_row(mask)
        ids = pmtstatus.decode_ids(mask.pmts).tolist()
    if as_json:
        click.echo(json.dumps({**row, "pmts": ids}, indent=2))
        return
    for key, title in _MASK_COLUMNS:
        click.echo(f"{title}: {row[key]}")
    click.echo(f"PMTs: {pmtstatus.format_pmt_ids(ids) or 'none'}")


def _created(mask: Any) -> None:
    click.echo(
        f"mask version {mask.version}: {mask.n_masked} PMT(s), valid from run "
        f"{mask.valid_from_run} on."
    )


@mask_group.command("derive")
@click.option(
    "--type",
    "run_type",
    type=click.Choice(RUN_TYPES),
    default="physics",
    show_default=True,
    help="The runs to derive from.",
)
@click.option(
    "--until", "until_run", type=click.IntRange(0, MAX_ID), required=True, help="The last run used."
)
@click.option(
    "--consecutive",
    type=click.IntRange(min=1, max=1000),
    default=None,
    help="Dead in this many runs [default: the configuration's mask_consecutive].",
)
@click.option(
    "--valid-from",
    "valid_from",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="First run it applies to [default: the run after --until].",
)
@click.option("--comment", default="", help="Recorded with the version.")
@pass_cli_ctx
def mask_derive_command(
    cli_ctx: CliContext,
    run_type: str,
    until_run: int,
    consecutive: int | None,
    valid_from: int | None,
    comment: str,
) -> None:
    """A new version: the PMTs dead in each of the latest runs up to --until."""
    with transaction(cli_ctx.database()) as session:
        mask = queries.derive_pmt_mask(
            session,
            run_type=run_type,
            until_run=until_run,
            consecutive=consecutive or cli_ctx.settings.mask_consecutive,
            valid_from_run=valid_from,
            user=cli_ctx.user,
            comment=comment,
        )
        _created(mask)


@mask_group.command("edit")
@click.option(
    "--from-run",
    "valid_from",
    type=click.IntRange(0, MAX_ID),
    required=True,
    help="First run the new version applies to.",
)
@click.option("--add", "added", default="", metavar="IDS", help="PMTs to mask: 17,4242,100-120.")
@click.option("--remove", "removed", default="", metavar="IDS", help="PMTs to use again.")
@click.option(
    "--base",
    type=click.IntRange(1, MAX_ID),
    default=None,
    help="The version to start from [default: the one valid for --from-run].",
)
@click.option("--comment", required=True, help="Why: recorded with the version.")
@pass_cli_ctx
def mask_edit_command(
    cli_ctx: CliContext,
    valid_from: int,
    added: str,
    removed: str,
    base: int | None,
    comment: str,
) -> None:
    """A new version by hand: a version with PMTs added and removed."""
    add, remove = pmtstatus.parse_pmt_ids(added), pmtstatus.parse_pmt_ids(removed)
    with transaction(cli_ctx.database()) as session:
        mask = queries.edit_pmt_mask(
            session,
            valid_from_run=valid_from,
            add=add,
            remove=remove,
            base_version=base,
            user=cli_ctx.user,
            comment=comment,
        )
        _created(mask)
