"""The evaluation of checks on a run: pure, from the run's view and what goes with it, in a worker.

:func:`evaluate` judges one check with its kind's function (:mod:`dqm.checks.kinds`);
:func:`evaluate_task` judges all of a run's checks (a checks job's work). Neither raises: a check
that fails gives Unknown with the reason, for itself only. Nothing here reads the database (a test
checks that a worker imports no SQLAlchemy).

Every result of a histogram check carries ``details["histogram"] = "stage/name"``: the dashboard
frames that histogram in the check's colour.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dqm import detector
from dqm.analyses.api import MissingInput, RunView, Value
from dqm.analyses.builtin.common import health
from dqm.checks import kinds
from dqm.checks.declarations import CheckDeclaration
from dqm.checks.kinds import Band, Outcome
from dqm.checks.quality import Quality
from dqm.errors import first_line
from dqm.pmtclass import DEAD, DEFAULT_CUTS, HOT, HitRateCuts

__all__ = ["CheckInputs", "CheckOutcome", "CheckTask", "evaluate", "evaluate_task"]


@dataclass(frozen=True)
class CheckInputs:
    """What the checks of a run read.

    Attributes:
        run: the run's view (its events not loaded).
        reference: its reference run's view (None: no reference).
        reference_reason: why that reference, in one sentence.
        analysis_values: the run's analysis variables, by (analysis, variable).
        history: the same variables in earlier Good runs of the type, newest first.
        pmt_cuts: the run type's PMT cuts.
        analyses_done: the analyses with a result for the run (a variable they left out was not
            measurable in it: TooFew, where a variable of an analysis not done yet is Unknown).
    """

    run: RunView
    reference: RunView | None = None
    reference_reason: str = ""
    analysis_values: Mapping[tuple[str, str], Value] = field(default_factory=dict)
    history: Mapping[tuple[str, str], Sequence[float]] = field(default_factory=dict)
    pmt_cuts: HitRateCuts = DEFAULT_CUTS
    analyses_done: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CheckOutcome:
    """A check's judgement of a run."""

    name: str
    version: int
    stage: str
    outcome: Outcome


@dataclass(frozen=True)
class CheckTask:
    """A checks job's work: these checks on these inputs."""

    run_id: int
    declarations: tuple[CheckDeclaration, ...]
    inputs: CheckInputs


def evaluate_task(task: CheckTask) -> list[CheckOutcome]:
    """Every check of the task, each judged alone."""
    return [
        CheckOutcome(d.name, d.version, d.stage, evaluate(d, task.inputs))
        for d in task.declarations
    ]


def evaluate(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    """One check's judgement of the run; Unknown with the reason if the check fails."""
    try:
        outcome = _JUDGES[declaration.kind](declaration, inputs)
    except MissingInput as exc:
        outcome = Outcome(Quality.UNKNOWN, f"{first_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - one check's failure must not stop the others
        outcome = Outcome(Quality.UNKNOWN, f"the check failed: {first_line(exc, with_type=True)}.")
    if declaration.histogram is not None:
        details = {**outcome.details, "histogram": "/".join(declaration.histogram)}
        outcome = Outcome(
            outcome.quality, outcome.sentence, outcome.statistics, outcome.reference_run, details
        )
    return outcome


# --- histograms ----------------------------------------------------------------------------------


def _histogram(view: RunView, declaration: CheckDeclaration) -> tuple[np.ndarray, np.ndarray]:
    """The contents and the bin centres (of the first axis) of the check's histogram."""
    assert declaration.histogram is not None
    stage, name = declaration.histogram
    if not view.histograms:
        raise _NothingYet(f"run {view.run_id} has no merged histograms yet.")
    histogram = view.histogram(stage, name)
    return np.asarray(histogram.values(), dtype=np.float64), histogram.axes[0].centers


class _NothingYet(LookupError):
    """The run has nothing processed yet: TooFew, not Unknown."""


_Judge = Callable[[CheckDeclaration, CheckInputs], Outcome]


def _guarded(judge: _Judge) -> _Judge:
    @functools.wraps(judge)
    def run(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
        try:
            return judge(declaration, inputs)
        except _NothingYet as exc:
            return Outcome(Quality.TOOFEW, str(exc), statistics=0)

    return run


def _vs_reference(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    counts, _centres = _histogram(inputs.run, declaration)
    reference = None
    reference_run = inputs.reference.run_id if inputs.reference is not None else None
    if inputs.reference is not None:
        assert declaration.histogram is not None
        try:
            reference = np.asarray(
                inputs.reference.histogram(*declaration.histogram).values(), dtype=np.float64
            ).ravel()
        except MissingInput:
            return Outcome(
                Quality.UNKNOWN,
                f"the reference run {reference_run} has no histogram "
                f"{'/'.join(declaration.histogram)}.",
                statistics=float(counts.sum()),
                reference_run=reference_run,
            )
    return kinds.histogram_vs_reference(
        counts.ravel(),
        reference,
        reference_run=reference_run,
        method=p["method"],
        warning_p=p["warning_p"],
        bad_p=p["bad_p"],
        min_effect=p["min_effect"],
        min_entries=p["min_entries"],
    )


def _one_dimensional(counts: np.ndarray, declaration: CheckDeclaration) -> np.ndarray:
    if counts.ndim != 1:
        raise ValueError(f"histogram {declaration.target} is not one-dimensional")
    return counts


def _mean_in_range(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    counts, centres = _histogram(inputs.run, declaration)
    return kinds.histogram_mean_in_range(
        centres,
        _one_dimensional(counts, declaration),
        warning=Band(*p["warning"]),
        bad=Band(*p["bad"]),
        min_entries=p["min_entries"],
        unit=p["unit"],
    )


def _contents_in_range(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    counts, centres = _histogram(inputs.run, declaration)
    return kinds.contents_in_range(
        centres,
        _one_dimensional(counts, declaration),
        low=p["low"],
        high=p["high"],
        warning_fraction=p["warning_fraction"],
        bad_fraction=p["bad_fraction"],
        min_entries=p["min_entries"],
    )


# --- analysis variables --------------------------------------------------------------------------


def _variable(declaration: CheckDeclaration, inputs: CheckInputs) -> tuple[str, Value | None]:
    assert declaration.variable is not None
    return "/".join(declaration.variable), inputs.analysis_values.get(declaration.variable)


def _not_measured(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome | None:
    """TooFew when the variable's analysis ran on the run but could not measure it."""
    assert declaration.variable is not None
    analysis, _variable_name = declaration.variable
    if declaration.variable in inputs.analysis_values or analysis not in inputs.analyses_done:
        return None
    return Outcome(
        Quality.TOOFEW,
        f"{'/'.join(declaration.variable)} could not be measured in this run (the analysis "
        "left it out: too few data for it).",
    )


def _in_band(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    if (too_few := _not_measured(declaration, inputs)) is not None:
        return too_few
    name, value = _variable(declaration, inputs)
    return kinds.variable_in_band(
        None if value is None else value.value,
        None if value is None else value.error,
        variable=name,
        unit=(value.unit if value is not None else "") or "",
        warning=Band(*p["warning"]),
        bad=Band(*p["bad"]),
    )


def _vs_history(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    if (too_few := _not_measured(declaration, inputs)) is not None:
        return too_few
    name, value = _variable(declaration, inputs)
    assert declaration.variable is not None
    history = list(inputs.history.get(declaration.variable, ()))[: p["runs"]]
    return kinds.variable_vs_history(
        None if value is None else value.value,
        None if value is None else value.error,
        history,
        variable=name,
        unit=(value.unit if value is not None else "") or "",
        warning_sigma=p["warning_sigma"],
        bad_sigma=p["bad_sigma"],
        min_history=p["min_history"],
    )


# --- PMTs ----------------------------------------------------------------------------------------


def _pmt_masks(view: RunView, cuts: HitRateCuts) -> dict[str, npt.NDArray[np.bool_]]:
    pmts = health(view.require_pmt(), cuts)
    classes = pmts.classes.pmt_class
    return {"dead": classes == DEAD, "hot": classes == HOT, "noisy": np.asarray(pmts.noisy)}


def _pmt_classes(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    pmt = inputs.run.pmt
    if pmt is None:
        raise _NothingYet(f"run {inputs.run.run_id} has no per-PMT statistics yet.")
    if pmt.n_events < p["min_events"]:
        return kinds.pmt_classes(
            {},
            None,
            reference_run=None,
            n_events=pmt.n_events,
            limits=p,
            cuts="",
            min_events=p["min_events"],
        )
    reference = None
    ref_pmt = inputs.reference.pmt if inputs.reference is not None else None
    if inputs.reference is not None and ref_pmt is not None and ref_pmt.n_events >= p["min_events"]:
        reference = _pmt_masks(inputs.reference, inputs.pmt_cuts)
    return kinds.pmt_classes(
        _pmt_masks(inputs.run, inputs.pmt_cuts),
        reference,
        reference_run=inputs.reference.run_id
        if reference is not None and inputs.reference
        else None,
        n_events=pmt.n_events,
        limits=p,
        cuts=inputs.pmt_cuts.describe(),
        min_events=p["min_events"],
    )


@functools.cache
def _sectors(n_phi: int, n_theta: int) -> npt.NDArray[np.int64]:
    """Each PMT's sector: ``n_phi`` slices in φ from -180°, times ``n_theta`` bands in θ."""
    pmts = detector.load_pmts()
    phi = pmts["phi_deg"].to_numpy(dtype=np.float64)
    theta = pmts["theta_deg"].to_numpy(dtype=np.float64)
    i_phi = np.clip(((phi + 180.0) / 360.0 * n_phi).astype(np.int64), 0, n_phi - 1)
    i_theta = np.clip((theta / 180.0 * n_theta).astype(np.int64), 0, n_theta - 1)
    sectors = i_theta * n_phi + i_phi
    sectors.setflags(write=False)
    return sectors


#: The per-PMT quantities a sector check may compare: the sum that counts toward each, its unit.
SECTOR_QUANTITIES = {
    "signal_charge_pe": ("signal_hits", "PE"),
    "signal_time_ns": ("signal_hits", "ns"),
    "mean_charge_pe": ("hit_count", "PE"),
    "mean_time_ns": ("hit_count", "ns"),
    "hit_rate": ("fired_events", "1"),
}


def _sectors_vs_reference(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    pmt = inputs.run.pmt
    if pmt is None:
        raise _NothingYet(f"run {inputs.run.run_id} has no per-PMT statistics yet.")
    quantity = p["quantity"]
    counted, unit = SECTOR_QUANTITIES[quantity]
    ref_view = inputs.reference
    reference = None
    good = health(pmt, inputs.pmt_cuts).good & (pmt.sums[counted] > 0)
    if ref_view is not None and ref_view.pmt is not None:
        ref_pmt = ref_view.pmt
        good = good & health(ref_pmt, inputs.pmt_cuts).good & (ref_pmt.sums[counted] > 0)
        reference = np.asarray(ref_pmt.derived()[quantity], dtype=np.float64)
    values = np.where(good, pmt.derived()[quantity], np.nan)
    return kinds.sectors_vs_reference(
        values,
        reference,
        _sectors(p["n_phi"], p["n_theta"]),
        reference_run=ref_view.run_id if ref_view is not None and reference is not None else None,
        quantity=quantity,
        relative=p["relative"] == "yes",
        n_events=pmt.n_events,
        min_sigma=p["min_sigma"],
        warning_effect=p["warning_effect"],
        bad_effect=p["bad_effect"],
        min_events=p["min_events"],
        unit=unit,
        dipole_phi=p["n_phi"] if p["dipole"] == "yes" else 0,
    )


# --- processing ----------------------------------------------------------------------------------


def _processing(declaration: CheckDeclaration, inputs: CheckInputs) -> Outcome:
    p = declaration.parameters
    files = inputs.run.files
    latency = [
        (f.done_at - f.arrived_at).total_seconds()
        for f in files
        if f.done_at is not None and f.arrived_at is not None
    ]
    return kinds.processing(
        n_files=len(files),
        failed=sum(f.state == "failed" for f in files),
        tocheck=int(inputs.run.processing.file_jobs.get("TOCHECK", 0)),
        latency_s=latency,
        failed_warning=p["failed_warning"],
        failed_bad=p["failed_bad"],
        tocheck_warning=p["tocheck_warning"],
        tocheck_bad=p["tocheck_bad"],
        latency_warning_s=p["latency_warning_s"],
        latency_bad_s=p["latency_bad_s"],
    )


_JUDGES = {
    "histogram_vs_reference": _guarded(_vs_reference),
    "histogram_mean_in_range": _guarded(_mean_in_range),
    "contents_in_range": _guarded(_contents_in_range),
    "variable_in_band": _in_band,
    "variable_vs_history": _vs_history,
    "pmt_classes": _guarded(_pmt_classes),
    "pmt_sectors_vs_reference": _guarded(_sectors_vs_reference),
    "processing": _processing,
}
