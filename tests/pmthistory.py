"""PMT statistics and statuses of the runs 101..106 (those of :mod:`judgedruns`), with a known
history: what the tests of the PMT history, the changes between runs and the masks read.

- PMT 5 is dead in every run, PMT 9 from run 104 on;
- PMT 20 is dead in 101..103 and recovers in 104;
- PMT 12 is hot in 106, PMT 30 noisy in 106;
- every other PMT fires in 10 % of the events (normal under the built-in cuts), with the nominal dark rate.
"""

from __future__ import annotations

import numpy as np

from dqm import detector, pmtstatus
from dqm.db import queries
from dqm.db.session import transaction
from dqm.pmtclass import DEFAULT_CUTS
from dqm.pmtstats import PMT_ARRAYS

RUNS = range(101, 107)
N_EVENTS = 10_000
LIVETIME_NS = N_EVENTS * detector.PRETRIGGER_WINDOW_NS
DEAD = {5: RUNS, 9: range(104, 107), 20: range(101, 104)}
HOT = {12: (106,)}
NOISY = {30: (106,)}


def sums_of(run_id: int) -> dict[str, np.ndarray]:
    """The per-PMT sums of a run of the history."""
    n = detector.N_PMTS
    sums = {name: np.zeros(n) for name in PMT_ARRAYS}
    fired = np.full(n, 0.1 * N_EVENTS)
    dark = detector.nominal_dark_rate_hz() * LIVETIME_NS * 1e-9
    for pmt, runs in DEAD.items():
        if run_id in runs:
            fired[pmt] = dark[pmt] = 0.0
    for pmt, runs in HOT.items():
        if run_id in runs:
            fired[pmt] = N_EVENTS
    for pmt, runs in NOISY.items():
        if run_id in runs:
            dark[pmt] *= 20
    sums["fired_events"] = fired
    sums["hit_count"] = fired * 1.2
    sums["charge_sum"] = fired * 1.2
    sums["dark_count"] = np.round(dark)
    sums["signal_hits"] = fired * 0.1
    sums["signal_charge_sum"] = fired * 0.1 * (1 + run_id / 1000)
    return sums


def fill_pmt_history(url: str) -> str:
    """Add the PMT statistics and statuses of runs 101..106 (which must exist) at ``url``."""
    with transaction(url) as s:
        for run_id in RUNS:
            sums = sums_of(run_id)
            queries.save_pmt_stats(
                s,
                run_id=run_id,
                file_id=None,
                n_events=N_EVENTS,
                livetime_ns=LIVETIME_NS,
                arrays=sums,
            )
            queries.save_pmt_status(
                s,
                run_id=run_id,
                run_type="physics",
                codes=pmtstatus.status_from_sums(sums, N_EVENTS, LIVETIME_NS, DEFAULT_CUTS),
                cuts=DEFAULT_CUTS,
                n_events=N_EVENTS,
                values=pmtstatus.history_values(sums, N_EVENTS, LIVETIME_NS),
            )
    return url
