"""The job server's command: ``dqm jobserver`` (added to ``dqm`` through an entry point)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

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
    type=click.IntRange(min=1),
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
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Attempts before a job is FAILED.",
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
@click.pass_obj
def jobserver(
    app: Any, executor: str, dask_scheduler: str | None, once: bool, **options: Any
) -> None:
    """Take messages from data transfer and run the jobs they call for.

    One log line per message and per job state change. Stops cleanly on SIGTERM or Ctrl-C: running
    jobs get a grace period; unfinished ones are submitted again by the next job server.
    """
    from dqm.errors import InvalidValueError

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.NOTSET)
    settings = app.settings
    app.database()  # reachable and migrated, or one clear line
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
    server.install_signal_handlers()
    server.run(once=once)
    sys.stdout.flush()
