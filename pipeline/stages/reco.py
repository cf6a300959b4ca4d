"""Event reconstruction, ``centroid`` method: vertex from the charge-weighted centroid of the hit
PMTs with a radial bias correction, energy from the total charge with a non-uniformity correction.

Both corrections come from the detector's optical model (the expected photo-electrons of every PMT
for a vertex: solid angle, attenuation, detection efficiency of its type — the same physics the
simulation uses, never its truth): for a vertex at radius r the charge centroid lies at
``shrink(r) · r`` and the total light is ``light(r)`` times that at the centre. Tables of both on a
radial grid are built once per process. Dark hits add charge but no direction on average; their
expected charge (nominal dark rates over the readout window) is taken off the total first.
"""

from __future__ import annotations

import functools

import hist
import numba
import numpy as np

from dqm import detector

#: Stage name under which the Rec histograms are stored.
STAGE = "rec"

#: Radii of the correction tables, mm.
_RADII = np.linspace(0.0, detector.LS_RADIUS_MM, 90)
#: Directions averaged over for the tables (fixed, so the tables are always the same).
_N_DIRECTIONS = 24


@functools.cache
def _pmt_model() -> tuple[np.ndarray, np.ndarray, float]:
    pmts = detector.load_pmts()
    xyz = pmts[["x_mm", "y_mm", "z_mm"]].to_numpy()
    unit = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    hamamatsu = (pmts["type"] == "Hamamatsu").to_numpy()
    pde = np.where(hamamatsu, detector.PDE["Hamamatsu"], detector.PDE["NNVT"])
    dark = np.where(hamamatsu, detector.DARK_RATE_HZ["Hamamatsu"], detector.DARK_RATE_HZ["NNVT"])
    dark_pe = float(dark.sum() * detector.READOUT_WINDOW_NS * 1e-9)
    return np.ascontiguousarray(unit), pde / pde.mean(), dark_pe


def expected_pe(vertex: np.ndarray) -> np.ndarray:
    """Expected photo-electrons of every PMT for 1 PE at the centre in total, for a vertex (mm)."""
    unit, pde_rel, _ = _pmt_model()
    radius = detector.PMT_RADIUS_MM
    projection = unit @ vertex
    d2 = radius**2 + vertex @ vertex - 2 * radius * projection
    d = np.sqrt(d2)
    cos_eta = (radius - projection) / d
    return (
        pde_rel
        * (radius**2 / d2)
        * cos_eta
        * np.exp((radius - d) / detector.ATTENUATION_LENGTH_MM)
        / len(unit)
    )


@functools.cache
def correction_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(radii, shrink, light)``: centroid radius over true radius, and total light relative to the
    centre, for vertices at ``radii`` (mm), averaged over directions."""
    unit, _, _ = _pmt_model()
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(_N_DIRECTIONS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shrink = np.empty(len(_RADII))
    light = np.empty(len(_RADII))
    for k, r in enumerate(_RADII):
        ratios, totals = [], []
        for direction in directions:
            mu = expected_pe(r * direction)
            total = mu.sum()
            centroid = (mu @ (unit * detector.PMT_RADIUS_MM)) / total
            ratios.append(centroid @ direction / r if r > 0 else np.nan)
            totals.append(total)
        shrink[k] = np.mean(ratios) if r > 0 else np.nan
        light[k] = np.mean(totals)
    shrink[0] = shrink[1]  # the limit at the centre
    return _RADII, shrink, light / light[0]


@numba.njit(cache=True)
def _centroids(
    pmt: np.ndarray, pe: np.ndarray, nhits: np.ndarray, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per event: the charge-weighted sum of PMT positions (3) and the total charge."""
    n = nhits.size
    moment = np.zeros((n, 3))
    total = np.zeros(n)
    start = 0
    for e in range(n):
        stop = start + nhits[e]
        for i in range(start, stop):
            q = pe[i]
            p = pmt[i]
            moment[e, 0] += q * position[p, 0]
            moment[e, 1] += q * position[p, 1]
            moment[e, 2] += q * position[p, 2]
            total[e] += q
        start = stop
    return moment, total


#: Signal window after an event's first signal hit, ns: the scintillation light (fast and slow
#: components, times of flight) arrives within it; dark hits outside it are left out.
SIGNAL_WINDOW_NS = 300.0


def reconstruct_centroid(
    pmt: np.ndarray,
    pe: np.ndarray,
    nhits: np.ndarray,
    light_yield: float = detector.LIGHT_YIELD_PE_PER_MEV,
    window_ns: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) in mm and visible energies (n,) in MeV of a chunk of events.

    Args:
        pmt, pe: PMT id and charge (PE) of every hit, event after event (hits outside the signal
            window given a charge of 0).
        nhits: hits per event.
        light_yield: photo-electrons per MeV at the centre.
        window_ns: length of the signal window the charges were taken in (None: the whole readout
            window), for the dark charge to subtract.
    """
    unit, _, dark_pe = _pmt_model()
    if window_ns is not None:
        dark_pe *= window_ns / detector.READOUT_WINDOW_NS
    moment, total = _centroids(
        pmt.astype(np.int64),
        pe.astype(np.float64),
        nhits.astype(np.int64),
        unit * detector.PMT_RADIUS_MM,
    )
    signal = np.maximum(total - dark_pe, 1e-9)
    centroid = moment / signal[:, None]
    r_centroid = np.linalg.norm(centroid, axis=1)
    radii, shrink, light = correction_tables()
    r_vertex = np.interp(r_centroid, radii * shrink, radii)
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = np.where(r_centroid[:, None] > 0, centroid / r_centroid[:, None], 0.0)
    vertex = direction * r_vertex[:, None]
    energy = signal / (light_yield * np.interp(r_vertex, radii, light))
    return vertex, energy


def rec_histograms() -> dict[str, hist.Hist]:
    """The empty Rec histograms, by name."""
    r_ls = detector.LS_RADIUS_MM
    return {
        "energy": hist.Hist(
            hist.axis.Regular(300, 0, 15, name="energy", label="visible energy [MeV]")
        ),
        "x": hist.Hist(hist.axis.Regular(180, -18_000, 18_000, name="x", label="x [mm]")),
        "y": hist.Hist(hist.axis.Regular(180, -18_000, 18_000, name="y", label="y [mm]")),
        "z": hist.Hist(hist.axis.Regular(180, -18_000, 18_000, name="z", label="z [mm]")),
        "r3": hist.Hist(hist.axis.Regular(120, 0, 1.2, name="r3", label="(R / 17.7 m)³")),
        "rho2_z": hist.Hist(
            hist.axis.Regular(100, 0, 1.2 * r_ls**2 / 1e6, name="rho2", label="ρ² [m²]"),
            hist.axis.Regular(100, -18, 18, name="z", label="z [m]"),
        ),
        "trigger_rate": hist.Hist(
            hist.axis.Regular(8640, 0, 86_400, name="time", label="time since run start [s]")
        ),
        "trigger_interval": hist.Hist(
            hist.axis.Regular(200, 0, 10, name="dt", label="time between triggers [ms]")
        ),
    }


#: Titles of the Rec histograms.
TITLES = {
    "energy": "Visible energy",
    "x": "Vertex x",
    "y": "Vertex y",
    "z": "Vertex z",
    "r3": "Vertex R³",
    "rho2_z": "ρ² versus z",
    "trigger_rate": "Triggers per 10 s",
    "trigger_interval": "Time between triggers",
}
