"""Per-PMT quantities derived from the stored per-PMT sums.

The database keeps sums (:data:`PMT_ARRAYS`) so that a run's statistics are exactly
the sum of its files'. Rates and means are not sums; they are derived here, in one place, from the
sums and the run's event count and live time:

- **hit rate**: the fraction of events in which the PMT fired (``fired_events / n_events``);
- **mean charge**: charge per hit in photo-electrons (``charge_sum / hit_count``);
- **mean hit time**: calibrated hit time per hit in ns (``time_sum / hit_count``), dark hits included;
- **dark rate**: hits in the pre-trigger window per second of that window
  (``dark_count / livetime``), in Hz;
- **signal charge** and **signal time**: charge per hit (PE) and calibrated time (ns) of the hits
  in the signal window of central low-energy events only (``signal_charge_sum / signal_hits``,
  ``signal_time_sum / signal_hits``). Such events light
  every PMT evenly, with single photo-electrons and about the same time of flight, and neither the
  few high-energy events of a run nor those near the edge can pull a region of the detector: these
  follow a PMT's gain and time offset, run after run.

A quantity whose denominator is zero (a PMT without hits, a run without events) is 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "DERIVED",
    "PMT_ARRAYS",
    "dark_rate_hz",
    "derived_pmt_quantities",
    "hit_rate",
    "per_hit_mean",
]

#: The per-PMT sums stored for every file and run (float64, one value a PMT): hits, events in which
#: the PMT fired, charge (PE), hit time (ns), pre-trigger dark hits; and the hits in the signal
#: window of central low-energy events, their charge (PE) and calibrated time (ns).
PMT_ARRAYS = (
    "hit_count",
    "fired_events",
    "charge_sum",
    "time_sum",
    "dark_count",
    "signal_hits",
    "signal_charge_sum",
    "signal_time_sum",
)

#: The derived quantities, by name, with their meaning.
DERIVED = {
    "hit_rate": "fraction of events in which the PMT fired",
    "mean_charge_pe": "mean charge per hit [PE]",
    "mean_time_ns": "mean calibrated hit time [ns]",
    "dark_rate_hz": "dark-noise rate from the pre-trigger window [Hz]",
    "signal_charge_pe": "mean charge per signal hit of central low-energy events [PE]",
    "signal_time_ns": "mean calibrated time of those hits [ns]",
}


def _ratio(numerator: np.ndarray, denominator: np.ndarray | float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.broadcast_to(np.asarray(denominator, dtype=np.float64), numerator.shape)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def hit_rate(fired_events: np.ndarray, n_events: int) -> np.ndarray:
    """Fraction of the ``n_events`` events in which each PMT fired (0 when there are none)."""
    return _ratio(fired_events, float(n_events))


def dark_rate_hz(dark_count: np.ndarray, livetime_ns: float) -> np.ndarray:
    """Dark-noise rate of each PMT in Hz: its pre-trigger hits over the summed pre-trigger windows
    ``livetime_ns`` (0 when the live time is 0)."""
    return _ratio(dark_count, float(livetime_ns) * 1e-9)


def per_hit_mean(total: np.ndarray, hit_count: np.ndarray) -> np.ndarray:
    """A per-hit mean (charge, time) of each PMT from its sum and hit count (0 without hits)."""
    return _ratio(total, hit_count)


def derived_pmt_quantities(
    arrays: Mapping[str, np.ndarray], *, n_events: int, livetime_ns: float
) -> dict[str, np.ndarray]:
    """Every quantity of :data:`DERIVED` from a run's (or a file's) per-PMT sums."""
    hits = arrays["hit_count"]
    return {
        "hit_rate": hit_rate(arrays["fired_events"], n_events),
        "mean_charge_pe": per_hit_mean(arrays["charge_sum"], hits),
        "mean_time_ns": per_hit_mean(arrays["time_sum"], hits),
        "dark_rate_hz": dark_rate_hz(arrays["dark_count"], livetime_ns),
        "signal_charge_pe": per_hit_mean(arrays["signal_charge_sum"], arrays["signal_hits"]),
        "signal_time_ns": per_hit_mean(arrays["signal_time_sum"], arrays["signal_hits"]),
    }
