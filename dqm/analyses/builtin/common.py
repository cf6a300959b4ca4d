"""What several built-in analyses share: the PMT types and azimuths, and the PMTs fit to measure
with (neither dead, hot nor noisy, by the rules of :mod:`dqm.pmtclass`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dqm import detector, pmtclass
from dqm.analyses.api import PmtStatistics, RunView

__all__ = [
    "PMT_TYPES",
    "PmtHealth",
    "health",
    "nominal_dark_rate_hz",
    "not_measured",
    "phi_deg",
    "run_duration_s",
    "type_masks",
]

#: The PMT types, as named in the PMT table, and the suffix of their variables.
PMT_TYPES = {"NNVT": "nnvt", "Hamamatsu": "hamamatsu"}


@functools.cache
def _pmt_table() -> tuple[dict[str, npt.NDArray[np.bool_]], npt.NDArray[np.float64]]:
    pmts = detector.load_pmts()
    kind = pmts["type"].astype(str).to_numpy()
    masks = {name: kind == name for name in PMT_TYPES}
    for mask in masks.values():
        mask.setflags(write=False)
    phi = pmts["phi_deg"].to_numpy(dtype=np.float64)
    phi.setflags(write=False)
    return masks, phi


def type_masks() -> dict[str, npt.NDArray[np.bool_]]:
    """For each PMT type, which PMTs are of it (read-only, in PMT id order)."""
    return _pmt_table()[0]


def phi_deg() -> npt.NDArray[np.float64]:
    """Azimuth of each PMT, degrees in [-180, 180] (read-only)."""
    return _pmt_table()[1]


def nominal_dark_rate_hz() -> npt.NDArray[np.float64]:
    """The nominal dark rate of each PMT's type (:data:`dqm.detector.DARK_RATE_HZ`), Hz."""
    return detector.nominal_dark_rate_hz()


@dataclass(frozen=True, eq=False)
class PmtHealth:
    """The PMTs of a run by class.

    Attributes:
        classes: the classes by hit rate (:func:`dqm.pmtclass.classify`).
        noisy: which PMTs are noisy (:func:`dqm.pmtclass.noisy`).
        good: which PMTs are neither dead, hot nor noisy: those the analyses measure with.
    """

    classes: pmtclass.PmtClassification
    noisy: npt.NDArray[np.bool_]
    good: npt.NDArray[np.bool_]

    @property
    def dead(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.classes.pmt_class == pmtclass.DEAD)

    @property
    def hot(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.classes.pmt_class == pmtclass.HOT)


def health(pmt: PmtStatistics, cuts: pmtclass.HitRateCuts = pmtclass.DEFAULT_CUTS) -> PmtHealth:
    """Classify a run's PMTs: dead and hot by hit rate under ``cuts``, noisy by dark rate.

    Raises:
        ValueError: the statistics are not of this detector's PMTs.
    """
    if pmt.n_pmts != detector.N_PMTS:
        raise ValueError(
            f"the per-PMT statistics hold {pmt.n_pmts} PMTs; this detector has {detector.N_PMTS}."
        )
    classes = pmtclass.classify(pmt.hit_rate, cuts)
    noisy = pmtclass.noisy(
        pmt.sums["dark_count"], pmt.livetime_ns, nominal_dark_rate_hz(), classes=classes
    )
    good = (classes.pmt_class != pmtclass.DEAD) & (classes.pmt_class != pmtclass.HOT) & ~noisy
    return PmtHealth(classes=classes, noisy=noisy, good=np.asarray(good))


def not_measured(data: dict[str, Any], what: str, reason: str) -> None:
    """Record in a result's ``data`` why ``what`` was left out."""
    data.setdefault("not_measured", {})[what] = reason


def run_duration_s(run: RunView) -> float | None:
    """How long the run took data, s: from its start to its end when both are known; else (a run
    still taking data) up to its latest trigger, from the event table or the trigger-rate
    histogram (the upper edge of its last filled bin); None when nothing tells."""
    duration = run.run.duration_s
    if duration is not None and duration > 0:
        return duration
    if run.events is not None and len(run.events):
        return float(np.max(run.events.column("time_s")))
    rates = run.histograms.get("rec", {}).get("trigger_rate")
    if rates is not None:
        filled = np.flatnonzero(rates.values() > 0)
        if len(filled):
            return float(rates.axes[0].edges[filled[-1] + 1])
    return None
