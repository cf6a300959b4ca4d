"""Named crash points for the crash-safety tests.

``DQM_FAILPOINTS=name[@N],...`` makes the job server kill itself with SIGKILL the N-th time (default:
the first time) it passes the point ``name``, exactly as a power cut or ``kill -9`` would. Unset (as
in production) a failpoint costs one dictionary lookup.

Points: ``intake:after-commit`` (message recorded, not yet acknowledged), ``submit:after-commit``
(job SUBMITTED, not yet handed to the executor), ``submit:after-handoff`` (the job out with a
worker), ``complete:after-commit`` (a job DONE and its merge
job created, the merge not yet run), ``complete:before-commit`` (results computed, not yet stored).
Each point can also be armed for one kind of job only, counting that kind's passes:
``complete:before-commit:analysis@2``.
"""

from __future__ import annotations

import os
import signal

_COUNTS: dict[str, int] = {}


def _armed() -> dict[str, int]:
    armed = {}
    for item in filter(None, os.environ.get("DQM_FAILPOINTS", "").split(",")):
        name, _, nth = item.strip().partition("@")
        armed[name] = int(nth) if nth else 1
    return armed


_ARMED = _armed()


def failpoint(name: str, kind: str | None = None) -> None:
    """Die here with SIGKILL if the failpoint ``name`` (or ``name:kind``, for a job of ``kind``)
    is armed and its count is reached."""
    if not _ARMED:
        return
    for point in (name, f"{name}:{kind}") if kind else (name,):
        if point not in _ARMED:
            continue
        _COUNTS[point] = _COUNTS.get(point, 0) + 1
        if _COUNTS[point] == _ARMED[point]:
            os.kill(os.getpid(), signal.SIGKILL)
