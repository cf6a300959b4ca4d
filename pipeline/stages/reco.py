"""Event reconstruction: the ``centroid`` vertex (charge-weighted centroid of the hit PMTs with a
radial bias correction; also the seed of the ``tlh`` fit, :mod:`pipeline.stages.tlh`) and the
energy from the charge in the signal window with a non-uniformity correction by position.

The corrections come from the detector's optical model (the expected photo-electrons of every PMT
for a vertex: solid angle, attenuation, detection efficiency of its type — the same physics the
simulation uses, never its truth): for a vertex at radius r the charge centroid lies at
``shrink(r) · r`` (averaged over directions), and the total light of a vertex at (r, cos θ) is
``light(r, cos θ)`` times that at the centre (averaged over azimuths). The tables are built once per
process. Dark hits add charge but no direction on average; their
expected charge (nominal dark rates over the readout window) is taken off the total first.
"""

from __future__ import annotations

import functools

import hist
import numba
import numpy as np
import numpy.typing as npt

from dqm import detector
from dqm.histcodec import AnyHist

#: Stage name under which the Rec histograms are stored.
STAGE = "rec"

#: Radii of the correction tables, mm.
_RADII = np.linspace(0.0, detector.LS_RADIUS_MM, 90)
#: Directions averaged over for the tables (fixed, so the tables are always the same).
_N_DIRECTIONS = 24


@functools.cache
def _pmt_model() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    pmts = detector.load_pmts()
    xyz = pmts[["x_mm", "y_mm", "z_mm"]].to_numpy()
    unit = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    hamamatsu = (pmts["type"] == "Hamamatsu").to_numpy()
    pde = np.where(hamamatsu, detector.PDE["Hamamatsu"], detector.PDE["NNVT"])
    dark = np.where(hamamatsu, detector.DARK_RATE_HZ["Hamamatsu"], detector.DARK_RATE_HZ["NNVT"])
    dark_pe = float(dark.sum() * detector.READOUT_WINDOW_NS * 1e-9)
    return np.ascontiguousarray(unit), pde / pde.mean(), dark_pe


def pmt_positions() -> np.ndarray:
    """Positions of the PMTs, (N, 3) in mm."""
    return _positions()


@functools.cache
def _positions() -> np.ndarray:
    unit, _, _ = _pmt_model()
    return np.ascontiguousarray(unit * detector.PMT_RADIUS_MM)


def expected_pe(vertex: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
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
def correction_tables() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(radii, shrink)``: the centroid's radius over the true radius for vertices at ``radii``
    (mm), averaged over directions."""
    unit, _, _ = _pmt_model()
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(_N_DIRECTIONS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    shrink = np.empty(len(_RADII))
    for k, r in enumerate(_RADII[1:], start=1):
        ratios = []
        for direction in directions:
            mu = expected_pe(r * direction)
            centroid = (mu @ (unit * detector.PMT_RADIUS_MM)) / mu.sum()
            ratios.append(centroid @ direction / r)
        shrink[k] = np.mean(ratios)
    shrink[0] = shrink[1]  # the limit at the centre
    return _RADII, shrink


#: Grid of the light map: radii (denser near the edge, where the light changes fastest) and
#: cos θ of the vertex direction.
_LIGHT_RADII = detector.LS_RADIUS_MM * np.sqrt(np.linspace(0.0, 1.0, 61))
_LIGHT_COS = np.linspace(-1.0, 1.0, 21)
_LIGHT_AZIMUTHS = 8


@numba.njit(cache=True)
def _total_light(
    unit: np.ndarray, weight: np.ndarray, radius: float, vertices: np.ndarray, attenuation: float
) -> np.ndarray:
    out = np.zeros(vertices.shape[0])
    r2p = radius * radius
    for v in range(vertices.shape[0]):
        vx, vy, vz = vertices[v, 0], vertices[v, 1], vertices[v, 2]
        r2 = vx * vx + vy * vy + vz * vz
        total = 0.0
        for i in range(unit.shape[0]):
            projection = radius * (unit[i, 0] * vx + unit[i, 1] * vy + unit[i, 2] * vz)
            d2 = r2p + r2 - 2.0 * projection
            d = np.sqrt(d2)
            total += (
                weight[i]
                * (r2p / d2)
                * ((radius * radius - projection) / (radius * d))
                * np.exp((radius - d) / attenuation)
            )
        out[v] = total
    return out


@functools.cache
def light_map() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(radii, cos_theta, light)``: total expected light of a vertex at (radius, cos θ) relative
    to the centre, averaged over azimuths; ``light[i, j]`` for ``radii[i]``, ``cos_theta[j]``."""
    unit, pde_rel, _ = _pmt_model()
    phi = (np.arange(_LIGHT_AZIMUTHS) + 0.5) * 2 * np.pi / _LIGHT_AZIMUTHS
    r, c, f = np.meshgrid(_LIGHT_RADII, _LIGHT_COS, phi, indexing="ij")
    s = np.sqrt(1.0 - c**2)
    vertices = np.stack([r * s * np.cos(f), r * s * np.sin(f), r * c], axis=-1).reshape(-1, 3)
    light = _total_light(
        unit, pde_rel, detector.PMT_RADIUS_MM, vertices, detector.ATTENUATION_LENGTH_MM
    ).reshape(r.shape)
    light = light.mean(axis=2)
    return _LIGHT_RADII, _LIGHT_COS, light / light[0].mean()


def relative_light(vertex: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Expected total light of vertices (n, 3) relative to the centre (bilinear in r and cos θ)."""
    radii, cos_grid, light = light_map()
    r: npt.NDArray[np.float64] = np.linalg.norm(vertex, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(r > 0, vertex[:, 2] / np.where(r > 0, r, 1.0), 0.0)
    # bin indices, annotated because numpy types them loosely (the sums below then are arrays)
    i: npt.NDArray[np.intp] = np.clip(
        np.searchsorted(radii, r, side="right") - 1, 0, len(radii) - 2
    )
    j: npt.NDArray[np.intp] = np.clip(
        np.searchsorted(cos_grid, cos, side="right") - 1, 0, len(cos_grid) - 2
    )
    fr = np.clip((r - radii[i]) / (radii[i + 1] - radii[i]), 0.0, 1.0)
    fc = np.clip((cos - cos_grid[j]) / (cos_grid[j + 1] - cos_grid[j]), 0.0, 1.0)
    return (
        light[i, j] * (1 - fr) * (1 - fc)
        + light[i + 1, j] * fr * (1 - fc)
        + light[i, j + 1] * (1 - fr) * fc
        + light[i + 1, j + 1] * fr * fc
    )


@functools.cache
def _dark_pe_per_pmt() -> npt.NDArray[np.float64]:
    """Expected dark photo-electrons of each PMT over the readout window (its type's rate)."""
    return detector.nominal_dark_rate_hz() * detector.READOUT_WINDOW_NS * 1e-9


def _dark_pe(window_ns: float | None, masked: npt.NDArray[np.int64] | None) -> float:
    """Expected dark charge of the PMTs used (all but the masked ones) in the window."""
    _, _, dark_pe = _pmt_model()
    if masked is not None and len(masked):
        dark_pe -= float(_dark_pe_per_pmt()[masked].sum())
    if window_ns is not None:
        dark_pe *= window_ns / detector.READOUT_WINDOW_NS
    return dark_pe


def masked_light(
    vertex: npt.NDArray[np.float64], masked: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """The light the masked PMTs would see of vertices (n, 3), relative to the whole detector's
    light of a vertex at the centre (the unit of :func:`relative_light`): exact, PMT by PMT."""
    unit, pde_rel, _ = _pmt_model()
    if not len(masked):
        return np.zeros(len(vertex))
    light: npt.NDArray[np.float64] = _total_light(
        np.ascontiguousarray(unit[masked]),
        np.ascontiguousarray(pde_rel[masked]),
        detector.PMT_RADIUS_MM,
        np.ascontiguousarray(vertex, dtype=np.float64),
        detector.ATTENUATION_LENGTH_MM,
    )
    # the unit, the light of the centre: every PMT at cos η = 1 and d = R
    return np.asarray(light / pde_rel.sum())


def energy_from_charge(
    signal_pe: np.ndarray,
    vertex: np.ndarray,
    light_yield: float = detector.LIGHT_YIELD_PE_PER_MEV,
    window_ns: float | None = None,
    masked: npt.NDArray[np.int64] | None = None,
) -> np.ndarray:
    """Visible energies (MeV): the charge in the signal window, its expected dark charge taken off,
    over the light expected at the vertex.

    ``masked``: PMT ids left out of the charge (the PMT mask): their dark charge and their share
    of the light at each vertex are left out of the expectation too.
    """
    signal = np.maximum(signal_pe - _dark_pe(window_ns, masked), 1e-9)
    light = relative_light(vertex)
    if masked is not None and len(masked):
        light = light - masked_light(vertex, masked)
    return signal / (light_yield * light)


def centroid_vertices(
    moment: npt.NDArray[np.float64],
    signal_pe: npt.NDArray[np.float64],
    window_ns: float | None = None,
    masked: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]:
    """Vertices (n, 3) in mm from the charge-weighted position sums and charges of the events,
    corrected for the centroid's radial shrink (``masked``: PMT ids left out of the sums)."""
    signal = np.maximum(signal_pe - _dark_pe(window_ns, masked), 1e-9)
    centroid = moment / signal[:, None]
    r_centroid: npt.NDArray[np.float64] = np.linalg.norm(centroid, axis=1)
    radii, shrink = correction_tables()
    r_vertex = np.interp(r_centroid, radii * shrink, radii)
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = np.where(r_centroid[:, None] > 0, centroid / r_centroid[:, None], 0.0)
    return direction * r_vertex[:, None]


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
    moment, total = _centroids(
        pmt.astype(np.int64), pe.astype(np.float64), nhits.astype(np.int64), pmt_positions()
    )
    vertex = centroid_vertices(moment, total, window_ns)
    return vertex, energy_from_charge(total, vertex, light_yield, window_ns)


def rec_histograms(method: str = "tlh") -> dict[str, AnyHist]:
    """The empty Rec histograms of a reconstruction method, by name."""
    r_ls = detector.LS_RADIUS_MM
    histograms: dict[str, AnyHist] = {
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
    if method == "tlh":
        lo, hi = TIME_RESIDUAL_RANGE_NS
        histograms["time_residual"] = hist.Hist(
            hist.axis.Regular(
                TIME_RESIDUAL_BINS,
                lo,
                hi,
                name="residual",
                label="hit time residual after the fit [ns]",
            )
        )
    return histograms


#: Range and bins of the time residual after the tlh fit.
TIME_RESIDUAL_RANGE_NS = (-50.0, 350.0)
TIME_RESIDUAL_BINS = 400


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
    "time_residual": "Hit time residual after the vertex fit",
}
