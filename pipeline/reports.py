"""The report writer: a thread beside the job server's loop that writes each run's report
(:mod:`dqm.report`) once the run is All Completed and its completion checks are stored, to
``DATA_DIR/reports/runRUN.html``.

It never blocks the loop: the loop hands it (run, job) and goes on; the thread waits until the
checks job's transaction is committed (the job DONE in the database), reads the run with its own
connection, draws and writes the file (a temporary file renamed, so a reader never sees half a
report). A report that cannot be written is logged once, with the reason; the run's page makes it
again on demand.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from sqlalchemy.orm import Session

from dqm.db import queries
from dqm.errors import first_line
from dqm.report import run_report
from dqm.states import JobState

log = logging.getLogger("dqm.reports")

__all__ = ["ReportWriter", "report_path"]


def report_path(directory: Path, run_id: int) -> Path:
    """Where a run's report is written."""
    return directory / f"run{run_id}.html"


class ReportWriter:
    """Writes run reports in a thread of its own.

    Args:
        directory: where the reports go (made when missing).
        transaction: opens a unit of work on the database.
        wait_s: how long to wait for the checks job's transaction to be committed.
        database_errors: the errors that mean the database is away (the job server's).
        on_database_error: called with such an error (the job server reports the outage once);
            the report is tried again, every ``retry_s``, until the database answers.
        retry_s: how long to wait before trying a report again after a database error.
    """

    def __init__(
        self,
        directory: Path,
        transaction: Callable[[], AbstractContextManager[Session]],
        wait_s: float = 60.0,
        database_errors: tuple[type[BaseException], ...] = (),
        on_database_error: Callable[[BaseException], None] | None = None,
        retry_s: float = 2.0,
    ) -> None:
        self.directory = directory
        self.transaction = transaction
        self.wait_s = wait_s
        self.database_errors = database_errors
        self.on_database_error = on_database_error
        self.retry_s = retry_s
        self._stopping = threading.Event()
        self._queue: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written: list[tuple[int, float]] = []  # (run, seconds), for the log and the tests

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="dqm-reports", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop once the reports asked for are written (at most ``timeout``; a database that is
        away gives up the rest)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            self._stopping.set()
            self._thread.join(self.retry_s + 1)
        self._thread = None
        self._stopping.clear()

    def submit(self, run_id: int, job_id: int) -> None:
        """Write run ``run_id``'s report once checks job ``job_id`` is committed."""
        self._queue.put((run_id, job_id))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            while True:
                try:
                    self.write(*item)
                except self.database_errors as exc:
                    if self.on_database_error is not None:
                        self.on_database_error(exc)
                    if self._stopping.wait(self.retry_s):
                        return  # stopped while the database is away: the page makes it later
                    continue
                except Exception as exc:  # noqa: BLE001 - one report that fails stops no other
                    log.error(
                        "run %d: the report could not be written: %s", item[0], first_line(exc)
                    )
                break

    def write(self, run_id: int, job_id: int) -> Path | None:
        """Write one report (once the job is DONE in the database); its path, or None if the job
        never was."""
        deadline = time.monotonic() + self.wait_s
        while True:
            with self.transaction() as session:
                job = queries.find_job(session, job_id=job_id)
                if job is not None and job.state == JobState.DONE:
                    break
            if time.monotonic() > deadline:
                log.warning("run %d: no report: its checks job %d was not stored", run_id, job_id)
                return None
            time.sleep(0.2)
        began = time.perf_counter()
        with self.transaction() as session:
            text = run_report(session, run_id=run_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = report_path(self.directory, run_id)
        partial = path.with_suffix(".html.part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        seconds = time.perf_counter() - began
        self.written.append((run_id, seconds))
        log.info("run %d: report written to %s in %.1f s", run_id, path, seconds)
        return path
