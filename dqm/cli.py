"""The ``dqm`` command line.

Core commands live here (configuration, database, runs). The job server and the dashboard add
their own commands (``dqm jobserver``, ``dqm serve``, ...) through the ``dqm.commands`` entry-point
group, so that this package never imports them.

Every error a user can cause (bad option, unknown run, bad date, unreachable database) ends in one
line on standard error: exit code 2 for bad input, 1 for a failure of the system.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from dqm import __version__
from dqm.config import DEFAULT_REC_METHOD, KEYS, REC_METHODS, Settings, load_settings
from dqm.db import migrate, queries
from dqm.db.models import JobState, MessageOutcome, Run, RunStatus
from dqm.db.session import check_schema, engine_for, transaction
from dqm.errors import ConfigError, DatabaseError, DQMError, InvalidValueError, NotFoundError
from dqm.messages import MessageError
from dqm.rawformat import RawFormatError

#: Entry-point group through which other packages add subcommands.
COMMAND_GROUP = "dqm.commands"

#: Exit code for bad input (unknown run, bad date, bad option), as click uses for usage errors.
EXIT_BAD_INPUT = 2
#: Exit code for a failure of the system (database unreachable, ...).
EXIT_FAILURE = 1

log = logging.getLogger("dqm")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` on standard error and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class DQMGroup(click.Group):
    """A click group that adds plugin commands and turns DQM errors into one line."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self._plugins():
            command = self._plugins()[cmd_name].load()
        return command

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Like click's, but a usage error is one line (``error: ...``) with exit code 2."""
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            if not standalone_mode:
                raise
            fail(f"{exc.format_message()}{hint}", EXIT_BAD_INPUT)
        except click.Abort:
            if not standalone_mode:
                raise
            fail("aborted.", EXIT_FAILURE)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            fail(exc.format_message(), exc.exit_code)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InvalidValueError, NotFoundError, ConfigError, MessageError, RawFormatError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except DQMError as exc:
            fail(str(exc), EXIT_FAILURE)
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            fail(f"the database refused the request: {detail}", EXIT_FAILURE)


class AppContext:
    """What the commands share: the configuration, loaded on first use."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    def database(self) -> str:
        """The database URL, after checking that the database is reachable and migrated."""
        url = self.settings.database_url
        check_schema(engine_for(url))
        return url


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=DQMGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="DQM_CONFIG",
    help="TOML configuration file (default: ./dqm.toml if present). Environment variables win.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="dqm")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int) -> None:
    """Data-quality monitoring of the detector: database, runs, job server and dashboard."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = AppContext(config_file)


# --- configuration and database ------------------------------------------------------------------


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def config_command(app: AppContext, as_json: bool) -> None:
    """Print the effective configuration (passwords masked) and where each value comes from."""
    settings = app.settings
    values = settings.masked()
    if as_json:
        click.echo(json.dumps({**values, "sources": dict(settings.sources)}, indent=2))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        source = settings.sources.get(key, "")
        suffix = f"   ({source})" if source else ""
        click.echo(f"{key:<{width}}  {value}{suffix}")
    click.echo()
    click.echo("Environment variables: " + ", ".join(var for var, _doc in KEYS.values()))


@cli.command("init-db")
@pass_app
def init_db(app: AppContext) -> None:
    """Create or upgrade the database schema to the newest revision (idempotent)."""
    url = app.settings.database_url
    before = _current_revision(url)
    migrate.upgrade(url, "head")
    after = migrate.current_revision(url)
    masked = app.settings.masked()["database_url"]
    if before == after:
        click.echo(f"database {masked} is up to date (revision {after}).")
    else:
        click.echo(f"database {masked} migrated from {before or 'empty'} to revision {after}.")


def _current_revision(url: str) -> str | None:
    try:
        return migrate.current_revision(url)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(f"database is not reachable: {detail}") from exc


# --- runs --------------------------------------------------------------------------------------


def _run_dict(run: Run) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat(sep=" ", timespec="seconds") if value is not None else None

    return {
        "run_id": run.run_id,
        "run_type": run.run_type,
        "detector": run.detector,
        "status": run.status.value,
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "n_events": run.n_events,
        "n_files": run.n_files,
        "sampling_fraction": run.sampling_fraction,
        "rec_method": run.rec_method,
        "comment": run.comment,
    }


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    cells = [
        [("" if row[key] is None else str(row[key])) for key, _title in columns] for row in rows
    ]
    widths = [
        max([len(title)] + [len(line[i]) for line in cells])
        for i, (_key, title) in enumerate(columns)
    ]
    click.echo("  ".join(title.ljust(w) for (_k, title), w in zip(columns, widths, strict=True)))
    for line in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _status_option(value: str | None) -> RunStatus | None:
    return None if value is None else queries.parse_status(value)


STATUS_HELP = (
    "Run status: "
    + ", ".join(f"'{s.value}'" for s in RunStatus)
    + " (any case; - or _ for spaces)."
)


@cli.command("runs")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
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
@pass_app
def runs_command(
    app: AppContext,
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
    with transaction(app.database()) as session:
        runs = queries.recent_runs(
            session,
            limit=limit,
            days=days,
            status=wanted_status,
            run_type=run_type,
            completed=completed,
        )
        rows = [_run_dict(run) for run in runs]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no runs match.")
        return
    _print_table(
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
                type=click.IntRange(min=0),
                default=None,
                help="Number of events.",
            ),
            click.option(
                "--files",
                "n_files",
                type=click.IntRange(min=0),
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


@run_group.command("add")
@click.argument("run_id", type=click.IntRange(min=0))
@_run_options(required_type=True)
@pass_app
def run_add(app: AppContext, run_id: int, **options: Any) -> None:
    """Record a new run RUN_ID (start time defaults to now)."""
    values = _given(**options)
    values.setdefault("start_time", "now")
    with transaction(app.database()) as session:
        run = queries.add_run(session, run_id=run_id, **values)
        click.echo(f"added run {run.run_id} ({run.run_type}, {run.status.value}).")


@run_group.command("set")
@click.argument("run_id", type=click.IntRange(min=0))
@_run_options(required_type=False)
@pass_app
def run_set(app: AppContext, run_id: int, **options: Any) -> None:
    """Change attributes of run RUN_ID (only the options given)."""
    values = _given(**options)
    if not values:
        raise InvalidValueError(
            "nothing to change; give at least one option (see 'dqm run set --help')."
        )
    with transaction(app.database()) as session:
        run = queries.update_run(session, run_id, **values)
        click.echo(
            f"run {run.run_id}: " + ", ".join(f"{key}={values[key]}" for key in values) + "."
        )


@run_group.command("show")
@click.argument("run_id", type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def run_show(app: AppContext, run_id: int, as_json: bool) -> None:
    """Show run RUN_ID with its files."""
    with transaction(app.database()) as session:
        run = queries.get_run(session, run_id)
        info = _run_dict(run)
        info["files"] = [
            {
                "seq": f.seq,
                "uri": f.uri,
                "state": f.state.value,
                "n_events": f.n_events,
                "size": f.size,
            }
            for f in queries.files_of_run(session, run_id)
        ]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key != "files":
            click.echo(f"{key:<18} {'' if value is None else value}")
    click.echo(f"{'files':<18} {len(info['files'])}")
    for f in info["files"]:
        click.echo(f"  {f['seq']:>5}  {f['state']:<10}  {f['uri']}")


@run_group.command("delete")
@click.argument("run_id", type=click.IntRange(min=0))
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def run_delete(app: AppContext, run_id: int, yes: bool) -> None:
    """Delete run RUN_ID with its files, jobs, histograms and PMT statistics."""
    url = app.database()
    with transaction(url) as session:
        run = queries.get_run(session, run_id)
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
        queries.delete_run(session, run_id)
    click.echo(f"deleted run {run_id}.")


# --- export ------------------------------------------------------------------------------------


@cli.command("export")
@click.argument("run_id", type=click.IntRange(min=0))
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
@pass_app
def export_command(
    app: AppContext, run_id: int, output: Path | None, stages: tuple[str, ...]
) -> None:
    """Write the histograms and PMT statistics of run RUN_ID to a ROOT file.

    One directory per stage with a TH1D/TH2D per histogram, the tree pmt_stats (one entry per
    PMT: its sums, hit rate, mean charge, mean hit time and dark rate) and run_info (the run and
    the provenance, JSON in a TObjString).
    """
    from dqm import rootexport

    path = output if output is not None else Path(f"run{run_id}.root")
    with transaction(app.database()) as session:
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


# --- jobs and messages -------------------------------------------------------------------------


@cli.command("jobs")
@click.option(
    "--run", "run_id", type=click.IntRange(min=0), default=None, help="Only the jobs of this run."
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
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most N jobs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def jobs_command(
    app: AppContext,
    run_id: int | None,
    state: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs with their state, attempts and last error; counts per state first."""
    wanted = None if state is None else queries.parse_job_state(state)
    with transaction(app.database()) as session:
        found = queries.list_jobs(session, run_id=run_id, state=wanted, kind=kind, limit=limit)
        counts = queries.count_jobs_by_state(session, run_id=run_id)
        seqs = {
            f.id: f.seq
            for run in {j.run_id for j in found}
            for f in queries.files_of_run(session, run)
        }
        rows = [
            {
                "id": job.id,
                "kind": job.kind,
                "run_id": job.run_id,
                "seq": seqs.get(job.file_id) if job.file_id is not None else None,
                "state": job.state.value,
                "attempts": job.attempts,
                "worker": job.worker,
                "submitted_at": _iso(job.submitted_at),
                "finished_at": _iso(job.finished_at),
                "error": job.error,
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
    _print_table(
        rows,
        [
            ("id", "job"),
            ("kind", "kind"),
            ("run_id", "run"),
            ("seq", "file"),
            ("state", "state"),
            ("attempts", "tries"),
            ("finished_at", "finished (UTC)"),
            ("error", "error"),
        ],
    )


def _iso(value: Any) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else None


@cli.command("retry")
@click.argument("job_id", type=click.IntRange(min=1), required=False)
@click.option(
    "--run",
    "run_id",
    type=click.IntRange(min=0),
    default=None,
    help="Retry every FAILED or TOCHECK job of this run.",
)
@pass_app
def retry_command(app: AppContext, job_id: int | None, run_id: int | None) -> None:
    """Send a FAILED or TOCHECK job (or all of a run) back to TODO with fresh attempts."""
    if (job_id is None) == (run_id is None):
        raise InvalidValueError("give either a JOB id or --run RUN.")
    with transaction(app.database()) as session:
        retried = queries.retry_jobs(session, job_id=job_id, run_id=run_id)
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
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most N messages, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the payload as received).")
@pass_app
def messages_command(
    app: AppContext, rejected: bool, duplicates: bool, limit: int, as_json: bool
) -> None:
    """List received messages and what intake did with them."""
    if rejected and duplicates:
        raise InvalidValueError("give --rejected or --duplicates, not both.")
    outcome = (
        MessageOutcome.REJECTED if rejected else MessageOutcome.DUPLICATE if duplicates else None
    )
    with transaction(app.database()) as session:
        rows = [
            {
                "id": m.id,
                "received_at": _iso(m.received_at),
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
    _print_table(
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


@cli.group("notify")
def notify_group() -> None:
    """Publish a message by hand, as data transfer does (operators, integration)."""


def _publish(app: AppContext, type_: str, **fields: Any) -> None:
    from dqm import broker, messages

    message = messages.make(type_, **fields)
    broker.publish(app.settings, message)
    click.echo(f"published {type_} for run {message.run_id} (message {message.message_id}).")


@notify_group.command("run-start")
@click.argument("run_id", type=click.IntRange(min=0))
@click.option("--type", "run_type", required=True, help="physics, calibration, laser or random.")
@click.option(
    "--start", "start_time", default="now", show_default=True, help="Start time, ISO 8601."
)
@click.option("--detector", default="CD", show_default=True, help="Detector name.")
@click.option("--source", default=None, help="Calibration source.")
@click.option("--source-z", "source_z_mm", type=float, default=None, help="Source position, mm.")
@click.option("--comment", default=None, help="Free text.")
@pass_app
def notify_run_start(app: AppContext, start_time: str, **fields: Any) -> None:
    """Announce that run RUN_ID started."""
    from dqm.times import parse_time

    _publish(app, "run_start", start_time=parse_time(start_time, what="start time"), **fields)


@notify_group.command("file-ready")
@click.argument("run_id", type=click.IntRange(min=0))
@click.argument("seq", type=click.IntRange(min=0))
@click.argument("uri")
@click.option("--size", type=click.IntRange(min=0), default=None, help="Bytes [from the file].")
@click.option("--checksum", default=None, help="adler32, 8 hex digits [from the file].")
@click.option(
    "--events", "n_events", type=click.IntRange(min=0), default=None, help="Events [from the file]."
)
@pass_app
def notify_file_ready(
    app: AppContext,
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
        app,
        "file_ready",
        run_id=run_id,
        seq=seq,
        uri=uri,
        size=size,
        checksum=checksum,
        n_events=n_events,
    )


@notify_group.command("run-end")
@click.argument("run_id", type=click.IntRange(min=0))
@click.option("--end", "end_time", default="now", show_default=True, help="End time, ISO 8601.")
@click.option(
    "--files", "n_files", type=click.IntRange(min=0), required=True, help="Files of the run."
)
@click.option(
    "--events", "n_events", type=click.IntRange(min=0), required=True, help="Events of the run."
)
@pass_app
def notify_run_end(app: AppContext, end_time: str, **fields: Any) -> None:
    """Announce that run RUN_ID ended."""
    from dqm.times import parse_time

    _publish(app, "run_end", end_time=parse_time(end_time, what="end time"), **fields)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dqm`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dqm")


if __name__ == "__main__":
    main()
