"""The job server's records: ``dqm jobs``, ``dqm retry``, ``dqm messages``."""

from __future__ import annotations

import json
from typing import Any

import click

from dqm.cli.base import CliContext, cli, pass_cli_ctx, print_table
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID
from dqm.states import JobState, MessageOutcome, parse_job_state
from dqm.times import format_time


@cli.command("jobs")
@click.option(
    "--run",
    "run_id",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="Only the jobs of this run.",
)
@click.option(
    "--state",
    default=None,
    help="Only jobs in this state: TODO, SUBMITTED, RUNNING, DONE, FAILED, TOCHECK.",
)
@click.option("--kind", default=None, help="Only jobs of this kind (process_file, merge_run, ...).")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_ID),
    default=50,
    show_default=True,
    help="At most N jobs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def jobs_command(
    cli_ctx: CliContext,
    run_id: int | None,
    state: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs with their state, attempts and last error; counts per state first."""
    wanted = None if state is None else parse_job_state(state)
    with transaction(cli_ctx.database()) as session:
        found = queries.list_jobs(session, run_id=run_id, state=wanted, kind=kind, limit=limit)
        counts = queries.count_jobs_by_state(session, run_id=run_id)
        seqs = {
            f.id: f.seq
            for run in {j.run_id for j in found}
            for f in queries.files_of_run(session, run_id=run)
        }
        rows: list[dict[str, Any]] = [
            {
                "id": job.id,
                "kind": job.kind,
                "run_id": job.run_id,
                "seq": seqs.get(job.file_id) if job.file_id is not None else None,
                "state": job.state.value,
                "attempts": job.attempts,
                "interruptions": job.interruptions,
                "worker": job.worker,
                "submitted_at": format_time(job.submitted_at),
                "finished_at": format_time(job.finished_at),
                "error": job.error,
                "analysis": job.analysis,
                "analysis_version": job.analysis_version,
                "traceback": job.traceback,
            }
            for job in found
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("  ".join(f"{s.value}: {counts.get(s, 0)}" for s in JobState))
    if not rows:
        click.echo("no jobs match.")
        return
    for row in rows:
        row["error"] = (row["error"] or "")[:80]
        if row["analysis"]:  # an analysis job's "file" is its analysis and version
            row["seq"] = f"{row['analysis']} v{row['analysis_version']}"
    print_table(
        rows,
        [
            ("id", "job"),
            ("kind", "kind"),
            ("run_id", "run"),
            ("seq", "file / analysis"),
            ("state", "state"),
            ("attempts", "tries"),
            ("interruptions", "interrupted"),
            ("finished_at", "finished (UTC)"),
            ("error", "error"),
        ],
    )


@cli.command("retry")
@click.argument("job_id", type=click.IntRange(1, MAX_ID), required=False)
@click.option(
    "--run",
    "run_id",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="Retry every FAILED or TOCHECK job of this run.",
)
@click.option(
    "--reason",
    default="",
    help="Why (needed for a certified run, which goes back to sign-off when reprocessed).",
)
@pass_cli_ctx
def retry_command(cli_ctx: CliContext, job_id: int | None, run_id: int | None, reason: str) -> None:
    """Send a FAILED or TOCHECK job (or all of a run) back to TODO with fresh attempts; a certified
    run goes back to sign-off (give --reason)."""
    if (job_id is None) == (run_id is None):
        raise InvalidValueError("give either a JOB id or --run RUN.")
    with transaction(cli_ctx.database()) as session:
        retried = queries.retry_jobs(
            session, job_id=job_id, run_id=run_id, user=cli_ctx.user, reason=reason
        )
        ids = [job.id for job in retried]
    if not ids:
        click.echo(f"run {run_id} has no FAILED or TOCHECK job.")
    else:
        click.echo(
            f"job(s) {', '.join(map(str, ids))} back to TODO; the job server submits them again."
        )


@cli.command("messages")
@click.option("--rejected", is_flag=True, help="Only rejected messages, with the reason.")
@click.option("--duplicates", is_flag=True, help="Only duplicates.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_ID),
    default=50,
    show_default=True,
    help="At most N messages, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the payload as received).")
@pass_cli_ctx
def messages_command(
    cli_ctx: CliContext, rejected: bool, duplicates: bool, limit: int, as_json: bool
) -> None:
    """List received messages and what intake did with them."""
    if rejected and duplicates:
        raise InvalidValueError("give --rejected or --duplicates, not both.")
    outcome = (
        MessageOutcome.REJECTED if rejected else MessageOutcome.DUPLICATE if duplicates else None
    )
    with transaction(cli_ctx.database()) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": m.id,
                "received_at": format_time(m.received_at),
                "type": m.type,
                "run_id": m.run_id,
                "outcome": m.outcome.value,
                "error": m.error,
                "message_id": m.message_id,
                "payload": m.payload,
            }
            for m in queries.messages(session, outcome=outcome, limit=limit)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no messages match.")
        return
    for row in rows:
        row["error"] = (row["error"] or "")[:100]
    print_table(
        rows,
        [
            ("id", "#"),
            ("received_at", "received (UTC)"),
            ("type", "type"),
            ("run_id", "run"),
            ("outcome", "outcome"),
            ("error", "reason"),
        ],
    )
