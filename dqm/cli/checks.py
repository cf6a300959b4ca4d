"""Checks, run quality, references and alarms on the command line:

- ``dqm checks list|rerun|backtest|save``;
- ``dqm quality RUN [--json]``;
- ``dqm reference RUN [--pin REF | --type-pin TYPE REF | --unpin]``;
- ``dqm alarms [--open] [--json]``, ``dqm alarms show ID``, ``dqm alarms ack ID --comment …``,
  ``dqm alarms close ID --comment …``.

Every command reads the check declarations first (built in and the operator's file) and refuses a
wrong one with one sentence naming the file and the entry.
"""

from __future__ import annotations

import json
from typing import Any

import click
from tqdm import tqdm

from dqm import __version__
from dqm.analyses.declarations import load_catalog
from dqm.checks.backtest import backtest, backtest_runs
from dqm.checks.declarations import CheckCatalog, load_checks
from dqm.checks.quality import Quality, parse_quality
from dqm.checks.records import queue_checks, save_check_version, with_saved_versions
from dqm.checks.references import choose_reference
from dqm.cli.base import CliContext, cli, pass_cli_ctx, print_table
from dqm.db import queries
from dqm.db.models import Alarm
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID
from dqm.states import AlarmState
from dqm.times import format_time


def _checks(cli_ctx: CliContext) -> CheckCatalog:
    settings = cli_ctx.settings
    return load_checks(settings.checks_file, analyses=load_catalog(settings.analyses_file))


@cli.group("checks")
def checks_group() -> None:
    """Automatic checks: the declared ones, evaluating them again, back-testing a change."""


@checks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def checks_list(cli_ctx: CliContext, as_json: bool) -> None:
    """The checks declared: kind, stage, run types, what each looks at."""
    rows = []
    for declaration in _checks(cli_ctx):
        target = declaration.histogram or declaration.variable
        rows.append(
            {
                "name": declaration.name,
                "version": declaration.version,
                "kind": declaration.kind,
                "stage": declaration.stage,
                "run_types": ",".join(sorted(declaration.run_types or ())) or "all",
                "target": "/".join(target) if target else "",
                "parameters": dict(declaration.parameters),
                "description": declaration.description,
                "origin": declaration.origin,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(
        rows,
        [
            ("name", "check"),
            ("version", "version"),
            ("kind", "kind"),
            ("stage", "stage"),
            ("run_types", "runs of type"),
            ("target", "looks at"),
        ],
    )


@checks_group.command("rerun")
@click.option(
    "--runs",
    "n_runs",
    type=click.IntRange(1, MAX_ID),
    default=50,
    show_default=True,
    help="How many of the latest finished runs.",
)
@click.option("--type", "run_type", default=None, help="Only runs of this type.")
@pass_cli_ctx
def checks_rerun(cli_ctx: CliContext, n_runs: int, run_type: str | None) -> None:
    """Queue the checks of the latest finished runs again (after a check changed version): the
    job server evaluates them with the checks it declares."""
    _checks(cli_ctx)  # refuse a wrong declaration before queueing anything
    with transaction(cli_ctx.database()) as session:
        if run_type is not None and run_type not in queries.run_types(session):
            raise InvalidValueError(f"there are no runs of type {run_type!r}.")
        run_ids = backtest_runs(
            session, run_types=None if run_type is None else [run_type], n_runs=n_runs
        )
        queued = sum(
            queue_checks(session, run_id=run_id, code_version=__version__) is not None
            for run_id in run_ids
        )
    click.echo(
        f"checks of {len(run_ids)} runs queued ({queued} new jobs, "
        f"{len(run_ids) - queued} already waiting); the job server evaluates them."
    )


def _settings(values: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidValueError(f"--set takes key=value, not {item!r}.")
        settings[key.strip()] = value.strip()
    return settings


@checks_group.command("backtest")
@click.argument("name")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    required=True,
    help="A parameter of the proposed definition (repeat for several).",
)
@click.option(
    "--runs",
    "n_runs",
    type=click.IntRange(1, MAX_ID),
    default=50,
    show_default=True,
    help="How many of the latest finished runs of the check's types.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def checks_backtest(
    cli_ctx: CliContext, name: str, settings: tuple[str, ...], n_runs: int, as_json: bool
) -> None:
    """Judge past runs under check NAME as it is and as it would be with the --set parameters,
    and list the runs whose quality would change. Nothing is saved."""
    declared = _checks(cli_ctx)
    with transaction(cli_ctx.database()) as session:
        current = with_saved_versions(session, declared).get(name)
        proposed = current.with_settings(_settings(settings))
        run_ids = backtest_runs(
            session,
            run_types=sorted(current.run_types) if current.run_types else None,
            n_runs=n_runs,
        )
        with tqdm(
            total=len(run_ids),
            desc=f"back-testing {name}",
            unit="run",
            disable=as_json,
            leave=False,
        ) as bar:
            rows = backtest(
                session, current=current, proposed=proposed, run_ids=run_ids, progress=bar.update
            )
    changed = [row for row in rows if row.changed]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "check": name,
                    "current_version": current.version,
                    "proposed": dict(proposed.parameters),
                    "runs": [
                        {
                            "run": row.run_id,
                            "current": str(row.current),
                            "proposed": str(row.proposed),
                            "changed": row.changed,
                            "current_sentence": row.current_sentence,
                            "proposed_sentence": row.proposed_sentence,
                        }
                        for row in rows
                    ],
                    "changed": [row.run_id for row in changed],
                },
                indent=2,
            )
        )
        return
    print_table(
        [
            {
                "run": row.run_id,
                "current": str(row.current),
                "proposed": str(row.proposed),
                "mark": "changes" if row.changed else "",
                "why": row.proposed_sentence if row.changed else "",
            }
            for row in rows
        ],
        [
            ("run", "run"),
            ("current", f"v{current.version}"),
            ("proposed", "proposed"),
            ("mark", ""),
            ("why", "proposed judgement"),
        ],
    )
    click.echo(
        f"{len(changed)} of {len(rows)} runs would change"
        + (f": {', '.join(str(r.run_id) for r in changed)}." if changed else ".")
    )


@checks_group.command("save")
@click.argument("name")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    required=True,
    help="A parameter of the new version (repeat for several).",
)
@click.option("--comment", default="", help="Why (recorded in the changes).")
@pass_cli_ctx
def checks_save(cli_ctx: CliContext, name: str, settings: tuple[str, ...], comment: str) -> None:
    """Save check NAME with the --set parameters as its new version (back-test it first): the job
    server evaluates it from the next evaluation on; `dqm checks rerun` judges past runs again."""
    declared = _checks(cli_ctx)
    with transaction(cli_ctx.database()) as session:
        current = with_saved_versions(session, declared).get(name)
        saved = save_check_version(
            session,
            current=current,
            proposed=current.with_settings(_settings(settings)),
            user=cli_ctx.user,
            comment=comment,
        )
    click.echo(f"check {name} version {saved.version} saved ({saved.origin}).")


# --- quality and references ----------------------------------------------------------------------


@cli.command("quality")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def quality_command(cli_ctx: CliContext, run_id: int, as_json: bool) -> None:
    """The quality of run RUN_ID, per stage, and every check's result with its sentence."""
    catalog = _checks(cli_ctx)
    versions = {d.name: d.version for d in catalog}
    with transaction(cli_ctx.database()) as session:
        run = queries.get_run(session, run_id=run_id)
        stages = queries.run_stage_qualities(session, run_ids=[run_id]).get(run_id, {})
        results = queries.check_results(session, run_id=run_id, versions=versions)
        info: dict[str, Any] = {
            "run": run_id,
            "run_type": run.run_type,
            "status": str(run.status),
            "quality": str(run.quality) if run.quality else None,
            "stages": {stage: str(q) for stage, q in stages.items()},
            "checks": [
                {
                    "check": r.check_name,
                    "version": r.version,
                    "stage": r.stage,
                    "quality": str(r.quality),
                    "sentence": r.sentence,
                    "reference_run": r.reference_run,
                    "statistics": r.statistics,
                    "evaluated_at": format_time(r.evaluated_at),
                }
                for r in results
            ],
        }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if info["quality"] is None:
        click.echo(f"run {run_id} ({run.run_type}, {run.status}): not judged yet.")
        return
    stage_text = ", ".join(f"{stage} {q}" for stage, q in info["stages"].items())
    click.echo(f"run {run_id} ({run.run_type}, {run.status}): {info['quality']} ({stage_text})")
    print_table(
        info["checks"],
        [("stage", "stage"), ("check", "check"), ("quality", "quality"), ("sentence", "why")],
    )


@cli.command("reference")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "--pin",
    "pin",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="Use this run as RUN_ID's reference (a shifter's override for one run).",
)
@click.option(
    "--pin-type",
    "pin_type",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="Use this run as the reference of every run of RUN_ID's type (an expert's pin).",
)
@click.option("--unpin", is_flag=True, help="Lift RUN_ID's own pin (the automatic choice holds).")
@click.option("--unpin-type", is_flag=True, help="Lift the pin of RUN_ID's run type.")
@click.option("--comment", default="", help="Why (recorded with the pin).")
@pass_cli_ctx
def reference_command(
    cli_ctx: CliContext,
    run_id: int,
    pin: int | None,
    pin_type: int | None,
    unpin: bool,
    unpin_type: bool,
    comment: str,
) -> None:
    """Which run is RUN_ID's reference, and why; or pin one (recorded in the changes)."""
    chosen = sum([pin is not None, pin_type is not None, unpin, unpin_type])
    if chosen > 1:
        raise InvalidValueError("give one of --pin, --pin-type, --unpin and --unpin-type.")
    with transaction(cli_ctx.database()) as session:
        run = queries.get_run(session, run_id=run_id)
        if pin is not None or unpin:
            queries.pin_reference(
                session, user=cli_ctx.user, reference_run=pin, run_id=run_id, comment=comment
            )
        elif pin_type is not None or unpin_type:
            queries.pin_reference(
                session,
                user=cli_ctx.user,
                reference_run=pin_type,
                run_type=run.run_type,
                comment=comment,
            )
        choice = choose_reference(session, run_id=run_id)
    if chosen:
        click.echo("recorded; the run's checks use it from their next evaluation.")
    click.echo(
        f"run {run_id}: reference {choice.run_id if choice.run_id is not None else 'none'}: "
        f"{choice.reason}"
    )


# --- alarms --------------------------------------------------------------------------------------


def _alarm_row(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.id,
        "state": str(alarm.state),
        "severity": str(alarm.severity),
        "kind": alarm.kind,
        "check": alarm.check_name,
        "run": alarm.run_id,
        "run_type": alarm.run_type,
        "sentence": alarm.sentence,
        "opened_at": format_time(alarm.opened_at),
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": format_time(alarm.acknowledged_at),
        "resolved_by": alarm.resolved_by,
        "resolved_at": format_time(alarm.resolved_at),
        "notifications": alarm.notifications,
        "escalated_at": format_time(alarm.escalated_at),
    }


@cli.group("alarms", invoke_without_command=True)
@click.option("--open", "only_open", is_flag=True, help="Only alarms not resolved.")
@click.option("--run", "run_id", type=click.IntRange(0, MAX_ID), default=None, help="Of this run.")
@click.option("--severity", default=None, help="Only Bad or Warning.")
@click.option("--limit", type=click.IntRange(1, MAX_ID), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def alarms_group(
    ctx: click.Context,
    only_open: bool,
    run_id: int | None,
    severity: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The alarms, newest first; `dqm alarms ack ID --comment ...` acknowledges one."""
    if ctx.invoked_subcommand is not None:
        return
    cli_ctx: CliContext = ctx.obj
    wanted: Quality | None = None
    if severity is not None:
        try:
            wanted = parse_quality(severity)
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None
    with transaction(cli_ctx.database()) as session:
        alarms = queries.list_alarms(
            session,
            states=[AlarmState.OPEN, AlarmState.ACKNOWLEDGED] if only_open else None,
            run_id=run_id,
            severity=wanted,
            limit=limit,
        )
        rows = [_alarm_row(alarm) for alarm in alarms]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no alarms" + (" open." if only_open else "."))
        return
    print_table(
        rows,
        [
            ("id", "id"),
            ("state", "state"),
            ("severity", "severity"),
            ("run", "run"),
            ("check", "check"),
            ("opened_at", "opened"),
            ("sentence", "what"),
        ],
    )


@alarms_group.command("show")
@click.argument("alarm_id", type=click.IntRange(1, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def alarms_show(cli_ctx: CliContext, alarm_id: int, as_json: bool) -> None:
    """One alarm and its history."""
    with transaction(cli_ctx.database()) as session:
        alarm = queries.get_alarm(session, alarm_id=alarm_id)
        info = _alarm_row(alarm)
        info["history"] = [
            {
                "at": format_time(e.at),
                "action": e.action,
                "state": str(e.state),
                "user": e.user,
                "comment": e.comment,
            }
            for e in alarm.events
        ]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key != "history":
            click.echo(f"{key:<16} {'' if value is None else value}")
    click.echo("history")
    for event in info["history"]:
        who = f" by {event['user']}" if event["user"] else ""
        said = f": {event['comment']}" if event["comment"] else ""
        click.echo(f"  {event['at']}  {event['action']}{who}{said}")


@alarms_group.command("ack")
@click.argument("alarm_id", type=click.IntRange(1, MAX_ID))
@click.option("--comment", required=True, help="What was done, or why it is fine.")
@pass_cli_ctx
def alarms_ack(cli_ctx: CliContext, alarm_id: int, comment: str) -> None:
    """Acknowledge alarm ALARM_ID: its reminders stop (recorded with who and when)."""
    with transaction(cli_ctx.database()) as session:
        alarm = queries.acknowledge_alarm(
            session, alarm_id=alarm_id, user=cli_ctx.user, comment=comment
        )
        click.echo(f"alarm {alarm.id} acknowledged by {alarm.acknowledged_by}.")


@alarms_group.command("close")
@click.argument("alarm_id", type=click.IntRange(1, MAX_ID))
@click.option("--comment", required=True, help="Why it can be closed.")
@pass_cli_ctx
def alarms_close(cli_ctx: CliContext, alarm_id: int, comment: str) -> None:
    """Close alarm ALARM_ID by hand (it reopens if its check turns Bad again)."""
    with transaction(cli_ctx.database()) as session:
        alarm = queries.close_alarm(session, alarm_id=alarm_id, user=cli_ctx.user, comment=comment)
        click.echo(f"alarm {alarm.id} closed by {alarm.resolved_by}.")
