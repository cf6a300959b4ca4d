"""The job server's command: ``dqm jobserver`` (added to ``dqm`` through an entry point)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from dqm.runs import MAX_ID
from pipeline.server import JobServer, ServerOptions


@click.command("jobserver")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where jobs run: local worker processes, or a Dask cluster.",
)
@click.option(
    "--scheduler",
    "dask_scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="The Dask scheduler (with --executor dask).",
)
@click.option(
    "-j",
    "--max-jobs",
    type=click.IntRange(1, MAX_ID),
    default=2,
    show_default=True,
    help="Jobs out at once (local: worker processes).",
)
@click.option(
    "--once",
    is_flag=True,
    help="Stop when nothing is left to do now (messages taken, jobs finished).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, MAX_ID),
    default=3,
    show_default=True,
    help="Attempts before a job is FAILED.",
)
@click.option(
    "--max-interruptions",
    type=click.IntRange(1, MAX_ID),
    default=10,
    show_default=True,
    help="Times a job's job server may vanish (kill -9, OOM) before the job is FAILED; "
    "they use up no attempt.",
)
@click.option(
    "--retry-base",
    "retry_base_s",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds before the first retry (doubling each time).",
)
@click.option(
    "--availability-timeout",
    "availability_timeout_s",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds to wait for announced data before TOCHECK.",
)
@click.option(
    "--availability-poll",
    "availability_poll_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between looks for data not yet there.",
)
@click.option(
    "--job-timeout",
    "job_timeout_s",
    type=click.FloatRange(min=1),
    default=6 * 3600.0,
    show_default=True,
    help="Seconds without a result before a job goes to TOCHECK.",
)
@click.option(
    "--lease",
    "lease_s",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds without heartbeat before another server's job is resubmitted.",
)
@click.option(
    "--file-jobs",
    "file_jobs",
    type=click.IntRange(1, MAX_ID),
    default=1,
    show_default=True,
    help="Processes over the chunks of one file (for few, large files).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    envvar="DQM_METRICS_PORT",
    show_default=True,
    help="Answer /metrics (Prometheus) and /health over HTTP on this port (0: not at all).",
)
@click.option(
    "--metrics-address",
    default="127.0.0.1",
    envvar="DQM_METRICS_ADDRESS",
    show_default=True,
    help="Interface of --metrics-port (0.0.0.0: every interface).",
)
@click.pass_obj
def jobserver(
    cli_ctx: Any,
    /,
    executor: str,
    dask_scheduler: str | None,
    once: bool,
    metrics_port: int,
    metrics_address: str,
    **options: Any,
) -> None:
    """Take messages from data transfer and run the jobs they call for.

    One log line per message and per job state change. Stops cleanly on SIGTERM or Ctrl-C: running
    jobs get a grace period; unfinished ones are submitted again by the next job server. With
    --metrics-port, Prometheus scrapes /metrics and a load balancer asks /health there.
    """
    from dqm.errors import InvalidValueError

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.NOTSET)
    settings = cli_ctx.settings
    cli_ctx.database()  # reachable and migrated, or one clear line
    if metrics_port:
        _check_listen(metrics_address, metrics_port)
    if executor == "dask":
        if not dask_scheduler:
            raise InvalidValueError("--executor dask needs --scheduler tcp://HOST:PORT.")
        from pipeline.executors import DaskExecutor

        try:
            pool: Any = DaskExecutor(dask_scheduler)
        except OSError as exc:
            raise InvalidValueError(
                f"Dask scheduler {dask_scheduler} is not reachable: {exc}"
            ) from None
    else:
        if dask_scheduler:
            raise InvalidValueError("--scheduler goes with --executor dask.")
        from pipeline.executors import LocalExecutor

        pool = LocalExecutor(options["max_jobs"])
    server = JobServer(settings, pool, ServerOptions(**options))
    if metrics_port:
        try:
            server.serve_metrics(metrics_address, metrics_port)
        except OSError as exc:  # taken since it was checked
            pool.close()
            raise _cannot_listen(metrics_address, metrics_port, exc) from None
    server.install_signal_handlers()
    server.run(once=once)
    sys.stdout.flush()


def _check_listen(address: str, port: int) -> None:
    """Raise the sentence of :func:`_cannot_listen` unless ``address:port`` can be listened on."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise _cannot_listen(address, port, exc) from None


def _cannot_listen(address: str, port: int, exc: OSError) -> Exception:
    from dqm.errors import InvalidValueError

    return InvalidValueError(
        f"cannot listen on {address}:{port} for the metrics: {exc.strerror or exc} (another "
        "job server there? give each its own --metrics-port)."
    )


@click.command("calibrate")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "--valid-from",
    "valid_from",
    type=click.IntRange(0, MAX_ID),
    default=None,
    help="First run the constants apply to [the laser run].",
)
@click.option(
    "-j",
    "--jobs",
    "n_jobs",
    type=click.IntRange(1, MAX_ID),
    default=2,
    show_default=True,
    help="Worker processes (one file each).",
)
@click.option("--comment", default=None, help="Free text stored with the constants.")
@click.pass_obj
def calibrate(
    cli_ctx: Any, run_id: int, valid_from: int | None, n_jobs: int, comment: str | None
) -> None:
    """Derive gains and time offsets of every PMT from laser run RUN_ID and store them as a new
    calibration version, valid from that run on (or --valid-from)."""
    import getpass

    import joblib

    from dqm.db import queries
    from dqm.db.session import transaction
    from dqm.errors import InvalidValueError
    from pipeline import jobs
    from pipeline.stages import laser

    url = cli_ctx.database()
    with transaction(url) as session:
        run = queries.get_run(session, run_id=run_id)
        if run.run_type != "laser":
            raise InvalidValueError(
                f"run {run_id} is a {run.run_type} run; gains and offsets come from a laser run."
            )
        files = [
            jobs.raw_file(f, cli_ctx.settings)
            for f in queries.files_of_run(session, run_id=run_id)
            if f.uri
        ]
    if not files:
        raise InvalidValueError(f"run {run_id} has no announced file.")
    click.echo(f"reading {len(files)} file(s) of laser run {run_id} ...", err=True)
    parts = joblib.Parallel(n_jobs=min(n_jobs, len(files)))(
        joblib.delayed(laser.laser_sums)(f) for f in files
    )
    try:
        result = laser.fit(parts)
    except ValueError as exc:
        raise InvalidValueError(f"run {run_id}: {exc}") from None
    with transaction(url) as session:
        stored = queries.add_calibration(
            session,
            valid_from_run=run_id if valid_from is None else valid_from,
            gains=result.gain,
            time_offsets=result.offset_ns,
            pmt_status=result.status,
            source_run=run_id,
            created_by=getpass.getuser(),
            comment=comment,
        )
        version, valid = stored.version, stored.valid_from_run
    live = result.status == laser.STATUS_GOOD
    click.echo(
        f"calibration version {version} (valid from run {valid}) from {result.n_events} flashes: "
        f"{int(live.sum())} PMTs fitted, {len(result.dead)} dead (not fitted); gain "
        f"{result.gain[live].mean():.1f} ± {result.gain[live].std():.1f} ADC/PE, offsets spread "
        f"{result.offset_ns[live].std():.2f} ns."
    )
