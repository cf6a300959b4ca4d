"""Where jobs run: a local process pool (default) or a Dask distributed cluster.

Both take a picklable function and its argument and give back a handle the scheduler polls: has it
started, has it finished, what did it return or raise. Worker processes never touch the database;
the scheduler stores what they return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from dqm.errors import DQMError, first_line

if TYPE_CHECKING:
    import distributed

log = logging.getLogger("dqm.executor")


class WorkerLost(DQMError):
    """The process that ran a job died (killed, out of memory); the job is run again."""


class Executor(Protocol):
    """What the scheduler needs of an executor."""

    name: str

    def submit(self, fn: Callable[[Any], Any], arg: Any, key: str) -> Any: ...
    def started(self, handle: Any) -> bool: ...
    def done(self, handle: Any) -> bool: ...
    def outcome(self, handle: Any) -> Any: ...
    def cancel(self, handle: Any) -> None: ...
    def close(self) -> None: ...


class LocalExecutor:
    """A pool of local worker processes (loky, as joblib uses): ``n_workers`` jobs at a time.

    The pool is the executor's own, not loky's process-wide reusable one, which joblib resizes or
    replaces for any ``Parallel`` call in the same process.
    """

    name = "local"

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self._pool = self._new_pool()

    def _new_pool(self) -> Any:
        from joblib.externals.loky import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.n_workers)

    def submit(self, fn: Callable[[Any], Any], arg: Any, key: str) -> Any:
        try:
            return self._pool.submit(fn, arg)
        except Exception:  # noqa: BLE001 - a broken pool (a worker was killed) is replaced
            self._pool.shutdown(wait=False, kill_workers=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, arg)

    def started(self, handle: Future[Any]) -> bool:
        return handle.running() or handle.done()

    def done(self, handle: Future[Any]) -> bool:
        return handle.done()

    def outcome(self, handle: Future[Any]) -> Any:
        from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError

        try:
            return handle.result()
        except (TerminatedWorkerError, BrokenProcessPool) as exc:
            raise WorkerLost(f"the worker process died: {first_line(exc, limit=200)}") from exc

    def cancel(self, handle: Future[Any]) -> None:
        handle.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, kill_workers=True)


class DaskExecutor:
    """Jobs on a Dask distributed cluster (``tcp://host:port``, or a Client or LocalCluster)."""

    name = "dask"

    def __init__(self, scheduler: Any) -> None:
        from distributed import Client

        self.client = (
            scheduler if isinstance(scheduler, Client) else Client(scheduler, timeout="10s")
        )
        self._processing: set[str] = set()

    def submit(self, fn: Callable[[Any], Any], arg: Any, key: str) -> distributed.Future[Any]:
        return self.client.submit(fn, arg, key=key, pure=False, retries=0)

    def refresh(self) -> None:
        """Ask the scheduler which tasks are being processed (once per scheduler step)."""
        try:
            self._processing = {key for keys in self.client.processing().values() for key in keys}
        except Exception as exc:  # noqa: BLE001 - an unreachable scheduler is reported by the futures
            log.debug("cannot ask the Dask scheduler what it processes: %s", exc)

    # distributed leaves Future.done unannotated: bool() gives its bool a type.
    def started(self, handle: distributed.Future[Any]) -> bool:
        return handle.key in self._processing or bool(handle.done())

    def done(self, handle: distributed.Future[Any]) -> bool:
        return bool(handle.done())

    def outcome(self, handle: distributed.Future[Any]) -> Any:
        from distributed import KilledWorker

        try:
            return handle.result()
        except KilledWorker as exc:
            raise WorkerLost(f"the Dask worker running it died: {exc}") from exc

    def cancel(self, handle: distributed.Future[Any]) -> None:
        handle.cancel()

    def close(self) -> None:
        self.client.close()
