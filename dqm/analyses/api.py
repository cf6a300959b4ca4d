"""What an analysis function receives and returns: a read-only, typed view of one run, and a typed
result.

An analysis is a pure function ``function(run: RunView, **parameters) -> Result``. It reads the run
(attributes, merged histograms as ``hist`` objects, per-PMT statistics, reconstructed events,
calibration, processing facts, provenance) and returns named variables, each a value with an error
and a unit, plus a free JSON-able ``data`` dict and optional figures. The view holds only plain
data (numpy arrays made read-only, ``hist`` objects copied), so it pickles to any worker process and
the function can neither change the run nor reach the database.

Example::

    from dqm.analyses import Result, RunView, Value

    def mean_energy(run: RunView) -> Result:
        energy = run.events.column("energy_mev")
        return Result(
            variables={"mean_energy": Value(energy.mean(), energy.std() / len(energy) ** 0.5)},
            data={"n_events": len(energy)},
        )
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dqm import pmtstats
from dqm.histcodec import AnyHist

__all__ = [
    "DIMENSIONLESS",
    "CalibrationInfo",
    "EventColumns",
    "FileInfo",
    "MissingInput",
    "PmtStatistics",
    "ProcessingInfo",
    "Provenance",
    "Result",
    "RunInfo",
    "RunView",
    "Value",
    "unit_suffix",
]


#: The unit of a dimensionless variable (a ratio, a count).
DIMENSIONLESS = "1"


def unit_suffix(unit: str | None) -> str:
    """What follows a number to give its unit: `` MeV``, or nothing for a dimensionless one."""
    return f" {unit}" if unit and unit != DIMENSIONLESS else ""


class MissingInput(LookupError):
    """An analysis asked for an input the run does not have (declare it in ``requires``)."""


def _frozen(array: Any, dtype: Any = None) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class RunInfo:
    """A run's attributes, as recorded from its messages.

    Attributes:
        run_id: the run number.
        run_type: physics, calibration, laser, random, ...
        detector: the detector that took it (``CD`` for the central detector).
        start_time: naive UTC.
        end_time: naive UTC; None while the run takes data.
        status: the run status when the view was made (``All Completed``, ...).
        n_events: events counted by run_end (None before it).
        n_files: files counted by run_end (None before it).
        tags: the run's tags (``messy``, ``bad``, ``ramp_up``, ...).
        source: the calibration source (``Cs137``, ``AmC``, ...), if any.
        source_z_mm: the source position on the central axis, mm.
        trigger_rate_hz: the nominal trigger rate announced by run_start, Hz.
        sampling_fraction: the fraction of events the DQM processed.
        rec_method: the reconstruction method (``tlh`` or ``centroid``).
        comment: the shifter's comment.
    """

    run_id: int
    run_type: str
    detector: str = "CD"
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    status: str = ""
    n_events: int | None = None
    n_files: int | None = None
    tags: frozenset[str] = frozenset()
    source: str | None = None
    source_z_mm: float | None = None
    trigger_rate_hz: float | None = None
    sampling_fraction: float = 1.0
    rec_method: str | None = None
    comment: str | None = None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (None while the run takes data)."""
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True, eq=False)
class PmtStatistics:
    """A run's per-PMT sums (see :mod:`dqm.pmtstats`) with the derived quantities.

    Attributes:
        n_events: events the sums cover (after sampling).
        livetime_ns: summed pre-trigger windows, ns (for dark rates).
        sums: the arrays of :data:`dqm.pmtstats.PMT_ARRAYS`, one value a PMT.
    """

    n_events: int
    livetime_ns: float
    sums: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sums", {name: _frozen(values, np.float64) for name, values in self.sums.items()}
        )

    @property
    def n_pmts(self) -> int:
        return len(next(iter(self.sums.values()))) if self.sums else 0

    def derived(self) -> dict[str, np.ndarray]:
        """Hit rate, mean charge, mean hit time and dark rate of each PMT (:mod:`dqm.pmtstats`)."""
        return pmtstats.derived_pmt_quantities(
            self.sums, n_events=self.n_events, livetime_ns=self.livetime_ns
        )

    @property
    def hit_rate(self) -> np.ndarray:
        """Fraction of events in which each PMT fired."""
        return pmtstats.hit_rate(self.sums["fired_events"], self.n_events)

    @property
    def dark_rate_hz(self) -> np.ndarray:
        """Dark-noise rate of each PMT from the pre-trigger window, Hz."""
        return pmtstats.dark_rate_hz(self.sums["dark_count"], self.livetime_ns)

    @property
    def mean_charge_pe(self) -> np.ndarray:
        """Mean charge per hit of each PMT, photo-electrons (with the run's calibration)."""
        return pmtstats.per_hit_mean(self.sums["charge_sum"], self.sums["hit_count"])

    @property
    def mean_time_ns(self) -> np.ndarray:
        """Mean calibrated hit time of each PMT, ns."""
        return pmtstats.per_hit_mean(self.sums["time_sum"], self.sums["hit_count"])


@dataclass(frozen=True, eq=False)
class EventColumns:
    """A run's reconstructed physics events (see :mod:`dqm.eventtable`), float32 columns of one
    length: ``x_mm``, ``y_mm``, ``z_mm``, ``energy_mev``, ``time_s``."""

    columns: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "columns", {name: _frozen(values) for name, values in self.columns.items()}
        )

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str) -> np.ndarray:
        """One column by name.

        Raises:
            MissingInput: no such column.
        """
        try:
            return self.columns[name]
        except KeyError:
            raise MissingInput(
                f"the event table has no column {name!r}; its columns are "
                f"{', '.join(self.columns)}."
            ) from None


@dataclass(frozen=True, eq=False)
class CalibrationInfo:
    """A version of the per-PMT calibration.

    Attributes:
        version: its number (0: the nominal constants, no calibration stored).
        valid_from_run: the first run it applies to.
        source_run: the laser run it was derived from, if any.
        gains: ADC counts per photo-electron, one a PMT.
        time_offsets_ns: cable offsets, one a PMT.
        pmt_status: 0 good, 1 dead, 2 hot, 3 not fitted (empty for the nominal constants).
    """

    version: int
    valid_from_run: int | None
    source_run: int | None
    gains: np.ndarray
    time_offsets_ns: np.ndarray
    pmt_status: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    def __post_init__(self) -> None:
        for name in ("gains", "time_offsets_ns", "pmt_status"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class FileInfo:
    """One raw file of the run as the DQM recorded it.

    Attributes:
        seq: its sequence number.
        uri: where it was read from.
        size: bytes announced.
        n_events: events announced (or read).
        state: announced, processing, done, failed, missing.
        arrived_at: when file_ready was received (naive UTC).
        done_at: when its processing was done (naive UTC), None if it is not.
    """

    seq: int
    uri: str
    size: int | None
    n_events: int | None
    state: str
    arrived_at: dt.datetime | None = None
    done_at: dt.datetime | None = None


@dataclass(frozen=True)
class ProcessingInfo:
    """How the DQM processed the run (for the processing analysis and for lineage).

    Attributes:
        run_end_received_at: when run_end was received (naive UTC), None before it.
        data_complete_at: when the last merge of the run finished, None if none did.
        file_jobs: the number of file jobs by state (``DONE``, ``FAILED``, ``TOCHECK``, ...).
    """

    run_end_received_at: dt.datetime | None = None
    data_complete_at: dt.datetime | None = None
    file_jobs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """Where the run's merged results come from.

    Attributes:
        code_version: the DQM version that made them.
        calibration_version: the calibration they were made with (0: nominal).
        rec_method: the reconstruction method.
        sampling_fraction: the fraction of events used.
        events_used: events in the merged results (after sampling).
        events_read: events read from the raw files.
        input_files: the files merged.
        fits_not_converged: the reconstructed events whose vertex fit did not converge, summed over
            the files (None: not known).
    """

    code_version: str | None = None
    calibration_version: int | None = None
    rec_method: str | None = None
    sampling_fraction: float = 1.0
    events_used: int = 0
    events_read: int = 0
    input_files: tuple[str, ...] = ()
    fits_not_converged: int | None = None


@dataclass(frozen=True, eq=False)
class RunView:
    """Everything an analysis may read about one run. Read-only.

    Attributes:
        run: the run's attributes.
        histograms: the run's merged histograms, by stage (``calib``, ``rec``) and name.
        pmt: the run's per-PMT statistics (None if the run has none yet).
        events: the run's reconstructed physics events (None if not loaded).
        calibration: the calibration the run is processed with (version 0, the nominal constants,
            while no calibration is stored; None if none is valid for it).
        previous_calibration: the calibration before that one, for comparisons (None if none).
        files: the run's raw files.
        processing: how the DQM processed the run.
        provenance: where the merged results come from.
    """

    run: RunInfo
    histograms: Mapping[str, Mapping[str, AnyHist]] = field(default_factory=dict)
    pmt: PmtStatistics | None = None
    events: EventColumns | None = None
    calibration: CalibrationInfo | None = None
    previous_calibration: CalibrationInfo | None = None
    files: tuple[FileInfo, ...] = ()
    processing: ProcessingInfo = field(default_factory=ProcessingInfo)
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def run_id(self) -> int:
        return self.run.run_id

    def histogram(self, stage: str, name: str) -> AnyHist:
        """A copy of the merged histogram ``name`` of ``stage`` (the analysis may change it freely).

        Raises:
            MissingInput: the run has no such histogram.
        """
        try:
            return self.histograms[stage][name].copy()
        except KeyError:
            known = ", ".join(f"{s}/{n}" for s, names in self.histograms.items() for n in names)
            raise MissingInput(
                f"run {self.run_id} has no merged histogram {stage}/{name}"
                + (f"; it has {known}." if known else "; it has none yet.")
            ) from None

    def require_pmt(self) -> PmtStatistics:
        """The per-PMT statistics.

        Raises:
            MissingInput: the run has none (declare ``pmt_stats`` in ``requires``).
        """
        if self.pmt is None:
            raise MissingInput(f"run {self.run_id} has no per-PMT statistics.")
        return self.pmt

    def require_events(self) -> EventColumns:
        """The reconstructed events.

        Raises:
            MissingInput: not loaded (declare ``event_table`` in ``requires``).
        """
        if self.events is None:
            raise MissingInput(
                f"the event table of run {self.run_id} was not loaded; declare 'event_table' in "
                "the analysis's requires."
            )
        return self.events

    def require_calibration(self) -> CalibrationInfo:
        """The calibration valid for the run.

        Raises:
            MissingInput: not loaded (declare ``calibration`` in ``requires``).
        """
        if self.calibration is None:
            raise MissingInput(
                f"no calibration was loaded for run {self.run_id}; declare 'calibration' in the "
                "analysis's requires."
            )
        return self.calibration


@dataclass(frozen=True)
class Value:
    """A variable's value with its error (one standard deviation) and unit.

    ``unit`` may be left out: the declared unit is taken. A unit given must be the declared one.
    """

    value: float
    error: float | None = None
    unit: str | None = None

    def __str__(self) -> str:
        unit = unit_suffix(self.unit)
        if self.error is None:
            return f"{self.value:.6g}{unit}"
        return f"{self.value:.6g} ± {self.error:.2g}{unit}"

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value) and (self.error is None or math.isfinite(self.error))


@dataclass(frozen=True)
class Result:
    """What an analysis returns.

    Attributes:
        variables: each declared variable's value (a :class:`Value`, or a plain number without
            error). A variable declared ``optional`` may be left out when it cannot be measured.
        data: free JSON-able details (lists, numbers, strings; numpy arrays and scalars are turned
            into lists and numbers).
        figures: figures by name: PNG bytes, or a HoloViews or Bokeh object, stored as a PNG.
    """

    variables: Mapping[str, Value | float] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
