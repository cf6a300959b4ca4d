"""How the run ran: its triggers (``trigger_rate``) and how the DQM processed it (``processing``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dqm.analyses.api import Result, RunView, Value
from dqm.analyses.builtin.common import not_measured, run_duration_s

__all__ = ["FAILED_FILE_STATES", "processing", "trigger_rate"]

#: File states that mean the file's data did not make it into the run's results.
FAILED_FILE_STATES = ("failed", "missing")


def trigger_rate(run: RunView) -> Result:
    """Mean trigger rate, live time, and the largest rate in one bin of the trigger-rate histogram
    (10 s) over the mean.

    The triggers are those of the Rec histogram ``trigger_rate`` (time since run start), scaled
    back by the sampling fraction; the live time is the run's duration (see
    :func:`~dqm.analyses.builtin.common.run_duration_s`). Only bins wholly inside the run count
    for the largest rate (the last one, cut by the end of the run, would read low); a run shorter
    than one bin has no such bin, and that variable is left out.

    Raises:
        MissingInput: the run has no merged trigger-rate histogram.
    """
    rates = run.histogram("rec", "trigger_rate")
    counts = np.asarray(rates.values(), dtype=np.float64)
    edges = np.asarray(rates.axes[0].edges, dtype=np.float64)
    sampling = run.run.sampling_fraction
    triggers = float(counts.sum())
    data: dict[str, Any] = {"triggers_used": int(triggers), "sampling_fraction": sampling}
    duration = run_duration_s(run)
    if duration is None or duration <= 0 or triggers == 0:
        not_measured(data, "trigger_rate", "the run has no trigger or no known duration.")
        return Result(data=data)
    mean = triggers / sampling / duration
    variables: dict[str, Value | float] = {
        "trigger_rate_hz": Value(mean, math.sqrt(triggers) / sampling / duration),
        "live_time_s": duration,
    }
    full = edges[1:] <= duration
    if full.any():
        width = np.diff(edges)[full]
        bin_rate = counts[full] / sampling / width
        worst = int(np.argmax(bin_rate))
        ratio = bin_rate[worst] / mean
        # The bin's own Poisson error dominates that of the mean over the whole run.
        error = ratio / math.sqrt(counts[full][worst]) if counts[full][worst] else 0.0
        variables["max_rate_ratio"] = Value(float(ratio), float(error))
        data["max_rate_bin_s"] = [float(edges[worst]), float(edges[worst + 1])]
    else:
        not_measured(data, "max_rate_ratio", f"the run ({duration:.3g} s) is shorter than a bin.")
    return Result(variables=variables, data=data)


def processing(run: RunView) -> Result:
    """Events, files and bytes the DQM processed, the failed files, and how long after run_end
    the run's data were complete.

    Events are those read from the raw files (the provenance; else the files' announced counts),
    files and bytes those recorded for the run, failed files those failed or missing. The latency
    is left out until both run_end and the run's last merge have happened.
    """
    files = run.files
    events = run.provenance.events_read or sum(f.n_events or 0 for f in files)
    variables: dict[str, Value | float] = {
        "events": events,
        "events_used": run.provenance.events_used,
        "files": len(files),
        "bytes": sum(f.size or 0 for f in files),
        "failed_files": sum(f.state in FAILED_FILE_STATES for f in files),
    }
    data: dict[str, Any] = {
        "file_states": {state: sum(f.state == state for f in files) for state in _states(run)},
        "file_jobs": dict(run.processing.file_jobs),
    }
    started = run.processing.run_end_received_at
    finished = run.processing.data_complete_at
    if started is not None and finished is not None:
        variables["data_complete_latency_s"] = (finished - started).total_seconds()
    else:
        not_measured(data, "data_complete_latency_s", "run_end or the last merge is still to come.")
    return Result(variables=variables, data=data)


def _states(run: RunView) -> list[str]:
    return sorted({f.state for f in run.files})
