"""Sign-off and certification from the command line: ``dqm signoff``, ``dqm certify``,
``dqm reopen``, ``dqm decisions`` and the good-run list, ``dqm goodruns``.

The command line acts as the installation's admin (it holds the database's credentials): the
roles of :mod:`dqm.users` are the dashboard's to ask.
"""

from __future__ import annotations

import json
from typing import Any

import click

from dqm.certification import parse_stage_decisions
from dqm.cli.base import CliContext, cli, pass_cli_ctx, print_table
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.messages import RUN_TYPES
from dqm.runs import MAX_ID
from dqm.times import format_time
from dqm.users import Role


def _stage_options(values: tuple[str, ...]) -> dict[str, str]:
    given = {}
    for item in values:
        stage, sep, decision = item.partition("=")
        if not sep or not stage.strip():
            raise InvalidValueError(f"--stage takes stage=Good or stage=Bad, not {item!r}.")
        given[stage.strip()] = decision.strip()
    return given


def _decided(run_id: int, action: str, decision: Any) -> str:
    verdict = f", verdict {decision.verdict}" if decision.verdict is not None else ""
    return f"run {run_id}: {action} by {decision.user} ({decision.state}{verdict})."


@cli.command("signoff")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="STAGE=Good|Bad",
    help="A stage's decision (repeat; the others start from the automatic quality: Bad where "
    "it is Bad, Good elsewhere).",
)
@click.option("--comment", required=True, help="What was seen, what was done.")
@pass_cli_ctx
def signoff_command(
    cli_ctx: CliContext, run_id: int, stages: tuple[str, ...], comment: str
) -> None:
    """Sign run RUN_ID off: a Good or Bad decision per stage, with a comment."""
    with transaction(cli_ctx.database()) as session:
        start = queries.sign_off_form(session, run_id=run_id)
        decisions = parse_stage_decisions(_stage_options(stages), start)
        decision = queries.decide(
            session,
            run_id=run_id,
            action="sign_off",
            user=cli_ctx.user,
            role=str(Role.ADMIN),
            comment=comment,
            stages=decisions,
        )
        click.echo(_decided(run_id, "signed off", decision))
        click.echo("  " + ", ".join(f"{stage} {q}" for stage, q in decision.stages.items()))


@cli.command("certify")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--comment", default="", help="Recorded with the certification.")
@pass_cli_ctx
def certify_command(cli_ctx: CliContext, run_id: int, comment: str) -> None:
    """Certify the signed-off run RUN_ID (its verdict is the sign-off's)."""
    with transaction(cli_ctx.database()) as session:
        decision = queries.decide(
            session,
            run_id=run_id,
            action="certify",
            user=cli_ctx.user,
            role=str(Role.ADMIN),
            comment=comment,
        )
        click.echo(_decided(run_id, "certified", decision))


@cli.command("reopen")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--reason", required=True, help="Why the run goes back to sign-off.")
@pass_cli_ctx
def reopen_command(cli_ctx: CliContext, run_id: int, reason: str) -> None:
    """Send run RUN_ID back to sign-off (also a certified one), with the reason."""
    with transaction(cli_ctx.database()) as session:
        decision = queries.decide(
            session,
            run_id=run_id,
            action="reopen",
            user=cli_ctx.user,
            role=str(Role.ADMIN),
            comment=reason,
        )
        click.echo(_decided(run_id, "sent back to sign-off", decision))


@cli.command("decisions")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def decisions_command(cli_ctx: CliContext, run_id: int, as_json: bool) -> None:
    """The sign-off history of run RUN_ID, oldest first."""
    with transaction(cli_ctx.database()) as session:
        run = queries.get_run(session, run_id=run_id)
        state = queries.current_certification(run)
        rows: list[dict[str, Any]] = [
            {
                "at": format_time(d.at),
                "action": d.action,
                "state": str(d.state),
                "verdict": str(d.verdict) if d.verdict else "",
                "stages": dict(d.stages),
                "user": d.user,
                "role": d.role,
                "comment": d.comment,
                "versions": dict(d.versions),
            }
            for d in queries.run_decisions(session, run_id=run_id)
        ]
    if as_json:
        click.echo(
            json.dumps(
                {"run": run_id, "state": str(state) if state else None, "decisions": rows},
                indent=2,
            )
        )
        return
    click.echo(f"run {run_id}: {state or 'not open for sign-off yet'}")
    print_table(
        [{**r, "stages": ", ".join(f"{k} {v}" for k, v in r["stages"].items())} for r in rows],
        [
            ("at", "at (UTC)"),
            ("action", "decision"),
            ("verdict", "verdict"),
            ("user", "by"),
            ("role", "role"),
            ("stages", "stages"),
            ("comment", "comment"),
        ],
    )


@cli.command("goodruns")
@click.option(
    "--type", "run_type", type=click.Choice(RUN_TYPES), default=None, help="Only this run type."
)
@click.option("--since", type=click.IntRange(0, MAX_ID), default=None, help="From this run on.")
@click.option("--until", type=click.IntRange(0, MAX_ID), default=None, help="Up to this run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def goodruns_command(
    cli_ctx: CliContext,
    run_type: str | None,
    since: int | None,
    until: int | None,
    as_json: bool,
) -> None:
    """The good-run list: certified Good runs, with the calibration, check and code versions
    they were certified under."""
    with transaction(cli_ctx.database()) as session:
        runs = queries.good_runs(
            session, run_types=[run_type] if run_type else None, since=since, until=until
        )
    rows: list[dict[str, Any]] = [r.as_dict() for r in runs]
    if as_json:
        click.echo(json.dumps({"good_runs": rows}, indent=2))
        return
    print_table(
        rows,
        [
            ("run", "run"),
            ("run_type", "type"),
            ("events", "events"),
            ("certified_at", "certified (UTC)"),
            ("certified_by", "by"),
            ("calibration_version", "calibration"),
            ("code_version", "code"),
        ],
    )
    click.echo(f"{len(rows)} good run{'s' if len(rows) != 1 else ''}.")
