"""Figures of the built-in analyses: small PNGs drawn with Matplotlib's Agg canvas (no window, no
global state, safe in worker processes)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dqm.analyses.builtin.fitting import PeakFit

__all__ = ["spectrum_png"]


def spectrum_png(
    energy_mev: np.ndarray,
    fits: Mapping[str, tuple[PeakFit, float]],
    *,
    title: str,
    range_mev: tuple[float, float],
    bins: int = 280,
) -> bytes:
    """The energy spectrum with each fitted line: its fit window shaded, the fitted position
    (solid) and the nominal one (dashed).

    Args:
        energy_mev: the reconstructed energies.
        fits: by label, the line's fit and its nominal energy (MeV).
        title: the figure's title.
        range_mev: the energies shown.
        bins: bins of the histogram.
    """
    figure = Figure(figsize=(7.0, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    counts, edges = np.histogram(energy_mev, bins=bins, range=range_mev)
    axes.stairs(counts, edges, color="#333333", linewidth=0.8)
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
    for colour, (label, (fit, nominal)) in zip(colours, fits.items(), strict=False):
        axes.axvspan(*fit.window, color=colour, alpha=0.12, linewidth=0)
        axes.axvline(
            fit.mean,
            color=colour,
            linewidth=1.2,
            label=f"{label}: {fit.mean:.4f} MeV ({fit.mean / nominal:.4f} of nominal)",
        )
        axes.axvline(nominal, color=colour, linewidth=0.8, linestyle="--")
    axes.set_xlim(*range_mev)
    axes.set_xlabel("reconstructed energy [MeV]")
    axes.set_ylabel(f"events / {(range_mev[1] - range_mev[0]) / bins * 1000:.0f} keV")
    axes.set_title(title, fontsize=10)
    if fits:
        axes.legend(fontsize=7, loc="upper right", frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
