"""The energy scale: the lines of the physics spectrum (``energy_scale``) and of the calibration
sources (``light_yield``), fitted in the reconstructed energies of the event table.

Each line is fitted by :func:`~dqm.analyses.builtin.fitting.fit_peak` (unbinned, a Gaussian on a
straight background in ±``fit_window_sigma`` fitted widths), started at the densest interval near
its nominal energy, so that a scale that has moved by several per cent is still found. A line with
too few events for a fit is left out (its variables are optional) and ``data["not_measured"]`` says
why.

The reconstruction turns the charge into energy with the nominal light yield
(:data:`dqm.detector.LIGHT_YIELD_PE_PER_MEV`, at the centre), correcting for the vertex
position: a line's fitted position over its true energy is therefore the light yield of the
detector relative to the nominal one. For events at the centre or on the axis the reconstructed
energy of a line is its energy within 0.05 %; for events spread over the whole volume it reads
0.2-0.4 % high (the non-uniformity correction of the reconstruction, averaged over the volume), which
the ratios of the physics lines show as they are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dqm.analyses.api import Result, RunView, Value
from dqm.analyses.builtin import fitting
from dqm.analyses.builtin.common import not_measured, run_duration_s
from dqm.analyses.builtin.figures import spectrum_png
from dqm.detector import LIGHT_YIELD_PE_PER_MEV, SOURCE_LINES_MEV

__all__ = [
    "PHYSICS_LINES_MEV",
    "PO210_VISIBLE_MEV",
    "energy_scale",
    "light_yield",
]

#: The gamma lines of the physics spectrum, MeV, by the prefix of their variables.
PHYSICS_LINES_MEV = {"k40": 1.461, "nh": 2.223, "tl208": 2.614}
#: Visible energy of the 5.3 MeV alpha of ²¹⁰Po after quenching in the scintillator, MeV.
PO210_VISIBLE_MEV = 0.45


#: How the figures name the lines.
LABELS = {"k40": "⁴⁰K", "nh": "n-H", "tl208": "²⁰⁸Tl", "po210": "²¹⁰Po (α, quenched)"}


def _fit_line(
    energy: np.ndarray,
    line_mev: float,
    *,
    resolution_1mev: float,
    search_fraction: float,
    window_sigma: float,
) -> fitting.PeakFit:
    """Find a line near ``line_mev`` (within ±``search_fraction``) and fit it."""
    sigma = resolution_1mev * math.sqrt(line_mev)
    start = fitting.find_peak(
        energy, line_mev * (1 - search_fraction), line_mev * (1 + search_fraction), 2 * sigma
    )
    return fitting.fit_peak(energy, start, sigma * start / line_mev, window_sigma=window_sigma)


def _fit_summary(fit: fitting.PeakFit) -> dict[str, Any]:
    return {
        "window_mev": [round(fit.window[0], 5), round(fit.window[1], 5)],
        "events_in_window": fit.n_window,
        "sigma_mev": fit.sigma,
        "signal_events": fit.signal,
    }


def energy_scale(
    run: RunView,
    *,
    fit_window_sigma: float = 2.5,
    resolution_1mev: float = 0.03,
    search_fraction: float = 0.08,
) -> Result:
    """Positions, ratios to nominal and resolutions of the ⁴⁰K, n-H and ²⁰⁸Tl lines, and the
    position and rate of the ²¹⁰Po alpha peak, in a physics run's reconstructed energies.

    Args:
        run: the run (its event table).
        fit_window_sigma: half-width of each fit window, in fitted widths of the line.
        resolution_1mev: the expected σ/E at 1 MeV (the first window's width; σ ∝ √E).
        search_fraction: how far from its nominal energy a line is looked for (relative).

    Raises:
        MissingInput: the event table was not loaded.
    """
    energy = np.asarray(run.require_events().column("energy_mev"), dtype=np.float64)
    variables: dict[str, Value] = {}
    data: dict[str, Any] = {"events": len(energy)}
    options = {
        "resolution_1mev": resolution_1mev,
        "search_fraction": search_fraction,
        "window_sigma": fit_window_sigma,
    }
    fits: dict[str, tuple[fitting.PeakFit, float]] = {}
    for name, line in PHYSICS_LINES_MEV.items():
        try:
            fit = _fit_line(energy, line, **options)
        except fitting.NotEnoughEvents as exc:
            not_measured(data, name, str(exc))
            continue
        fits[LABELS.get(name, name)] = (fit, line)
        variables[f"{name}_peak_mev"] = Value(fit.mean, fit.mean_error)
        variables[f"{name}_ratio"] = Value(fit.mean / line, fit.mean_error / line)
        variables[f"{name}_resolution"] = Value(100 * fit.resolution, 100 * fit.resolution_error)
        data[name] = _fit_summary(fit)

    def result() -> Result:
        figure = spectrum_png(
            energy,
            fits,
            title=f"Run {run.run_id}: the lines of the physics spectrum",
            range_mev=(0.2, 3.0),
        )
        return Result(variables=variables, data=data, figures={"spectrum": figure})

    try:
        po210 = _fit_line(energy, PO210_VISIBLE_MEV, **options)
    except fitting.NotEnoughEvents as exc:
        not_measured(data, "po210", str(exc))
        return result()
    fits[LABELS["po210"]] = (po210, PO210_VISIBLE_MEV)
    variables["po210_peak_mev"] = Value(po210.mean, po210.mean_error)
    data["po210"] = _fit_summary(po210)
    duration = run_duration_s(run)
    sampling = run.run.sampling_fraction
    if duration is None or duration <= 0 or sampling <= 0:
        not_measured(data, "po210_rate_hz", "the run's duration is not known.")
    else:
        # The event table holds the sampled events: scale back to all of them.
        exposure = duration * sampling
        variables["po210_rate_hz"] = Value(po210.signal / exposure, po210.signal_error / exposure)
    return result()


def light_yield(
    run: RunView,
    *,
    fit_window_sigma: float = 2.5,
    resolution_1mev: float = 0.03,
    search_fraction: float = 0.15,
) -> Result:
    """Photo-electrons per MeV from the line of a calibration source, and its resolution.

    The reconstruction converts charge to energy with the nominal light yield at the centre,
    correcting for the vertex position; the source's fitted peak over its line energy, times that
    nominal light yield, is the detector's light yield (referred to the centre through the
    reconstruction's non-uniformity correction; at the centre, the photo-electrons per MeV there).

    Args:
        run: the calibration run (its source and event table).
        fit_window_sigma: half-width of the fit window, in fitted widths of the line.
        resolution_1mev: the expected σ/E at 1 MeV (the first window's width).
        search_fraction: how far from its nominal energy the line is looked for (relative).

    Raises:
        ValueError: the run has no source, or one this analysis does not know.
        MissingInput: the event table was not loaded.
    """
    source = run.run.source
    if not source:
        raise ValueError(
            f"run {run.run_id} names no calibration source, so there is no line to fit; the "
            "light yield is measured on source runs (run_start's source)."
        )
    if source not in SOURCE_LINES_MEV:
        raise ValueError(
            f"run {run.run_id} has source {source!r}, whose line is not known; the known sources "
            f"are {', '.join(SOURCE_LINES_MEV)}."
        )
    line = SOURCE_LINES_MEV[source]
    energy = np.asarray(run.require_events().column("energy_mev"), dtype=np.float64)
    data: dict[str, Any] = {
        "source": source,
        "source_z_mm": run.run.source_z_mm,
        "line_mev": line,
        "events": len(energy),
    }
    try:
        fit = _fit_line(
            energy,
            line,
            resolution_1mev=resolution_1mev,
            search_fraction=search_fraction,
            window_sigma=fit_window_sigma,
        )
    except fitting.NotEnoughEvents as exc:
        not_measured(data, "light_yield", str(exc))
        return Result(data=data)
    scale = LIGHT_YIELD_PE_PER_MEV / line
    data.update(_fit_summary(fit))
    figure = spectrum_png(
        energy,
        {source: (fit, line)},
        title=f"Run {run.run_id}: the {source} line",
        range_mev=(max(0.0, 0.6 * line), 1.4 * line),
        bins=140,
    )
    return Result(
        figures={"peak": figure},
        variables={
            "light_yield_pe_per_mev": Value(fit.mean * scale, fit.mean_error * scale),
            "peak_mev": Value(fit.mean, fit.mean_error),
            "resolution": Value(100 * fit.resolution, 100 * fit.resolution_error),
        },
        data=data,
    )
