"""The simulated detector: per-PMT true constants, energy spectra, vertices and calibration sources.

The true constants of the PMTs (gain, cable offset, dark rate) come from a fixed detector seed, not
from a run's seed: like a real detector, every run sees the same PMTs, so constants derived from a
laser run apply to the physics runs after it. Faults change them per run (see :mod:`.faults`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dqm import detector

#: Seed of the detector's true per-PMT constants.
DETECTOR_SEED = 17_612
#: Mean gain, ADC counts per photo-electron, and its relative spread between PMTs.
GAIN_MEAN_ADC = detector.NOMINAL_GAIN_ADC_PER_PE
GAIN_SPREAD = 0.10
#: Relative width (sigma) of the single-photo-electron charge.
SPE_SIGMA = 0.30
#: Range of the cable offsets, ns.
CABLE_OFFSET_RANGE_NS = (-10.0, 10.0)
#: Relative spread of the dark rates between PMTs of one type.
DARK_RATE_SPREAD = 0.20
#: Scintillation emission profile: fast and slow decay times (ns) and the fast fraction.
TAU_FAST_NS = detector.SCINT_TAU_FAST_NS
TAU_SLOW_NS = detector.SCINT_TAU_SLOW_NS
FAST_FRACTION = detector.SCINT_FAST_FRACTION
#: Width of the laser pulse, ns.
LASER_SIGMA_NS = 0.3
#: Time of the interaction in the readout window (ns), before the trigger-clock jitter.
T0_NS = detector.TRIGGER_POSITION_NS
#: Trigger clock tick: the interaction time varies over one tick, ns.
TRIGGER_TICK_NS = 16.0

#: Calibration sources: visible energy (MeV) of one decay, all gammas absorbed (the detector's
#: table, which the DQM's light-yield analysis reads too).
SOURCES: dict[str, float] = detector.SOURCE_LINES_MEV


@dataclass(frozen=True)
class DetectorState:
    """The true per-PMT constants in force for one file (what a perfect calibration would find).

    Attributes:
        unit: (N, 3) unit vectors towards the PMT centres.
        is_hamamatsu: (N,) PMT type.
        pde_rel: (N,) detection efficiency relative to the mean; 0 for a dead PMT.
        gain: (N,) ADC counts per photo-electron.
        offset_ns: (N,) cable offsets.
        tts_sigma_ns: (N,) transit-time spread of the PMT's type.
        dark_rate_hz: (N,) dark count rate; 0 for a dead PMT.
        hot_occupancy: (N,) probability of firing in any event for a hot PMT, else 0.
        light_yield: photo-electrons per MeV at the centre.
    """

    unit: np.ndarray
    is_hamamatsu: np.ndarray
    pde_rel: np.ndarray
    gain: np.ndarray
    offset_ns: np.ndarray
    tts_sigma_ns: np.ndarray
    dark_rate_hz: np.ndarray
    hot_occupancy: np.ndarray
    light_yield: float

    @property
    def n_pmts(self) -> int:
        return int(self.unit.shape[0])

    def evolve(self, **changes: Any) -> DetectorState:
        """A copy with some attributes replaced."""
        return replace(self, **changes)


def nominal_detector(light_yield: float = detector.LIGHT_YIELD_PE_PER_MEV) -> DetectorState:
    """The detector without faults, its constants drawn from :data:`DETECTOR_SEED`."""
    pmts = detector.load_pmts()
    rng = np.random.default_rng(DETECTOR_SEED)
    n = len(pmts)
    xyz = pmts[["x_mm", "y_mm", "z_mm"]].to_numpy()
    unit = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    is_hamamatsu = (pmts["type"] == "Hamamatsu").to_numpy()
    pde = np.where(is_hamamatsu, detector.PDE["Hamamatsu"], detector.PDE["NNVT"])
    tts = np.where(is_hamamatsu, detector.TTS_SIGMA_NS["Hamamatsu"], detector.TTS_SIGMA_NS["NNVT"])
    dark_mean = np.where(
        is_hamamatsu, detector.DARK_RATE_HZ["Hamamatsu"], detector.DARK_RATE_HZ["NNVT"]
    )
    gain = GAIN_MEAN_ADC * np.clip(rng.normal(1.0, GAIN_SPREAD, n), 0.5, 1.5)
    offset = rng.uniform(*CABLE_OFFSET_RANGE_NS, n)
    dark = dark_mean * np.clip(rng.normal(1.0, DARK_RATE_SPREAD, n), 0.3, 2.0)
    return DetectorState(
        unit=np.ascontiguousarray(unit),
        is_hamamatsu=is_hamamatsu,
        pde_rel=pde / pde.mean(),
        gain=gain,
        offset_ns=offset,
        tts_sigma_ns=tts.astype(np.float64),
        dark_rate_hz=dark,
        hot_occupancy=np.zeros(n),
        light_yield=float(light_yield),
    )


def uniform_vertices(
    rng: np.random.Generator, n: int, radius: float = detector.LS_RADIUS_MM
) -> np.ndarray:
    """``n`` vertices uniform in a sphere of ``radius`` (mm), shape (n, 3)."""
    r = radius * np.cbrt(rng.random(n))
    cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return np.column_stack(
        (r * sin_theta * np.cos(phi), r * sin_theta * np.sin(phi), r * cos_theta)
    )


def _beta_cdf(q_mev: float, threshold: float, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Grid and CDF of an allowed beta spectrum of endpoint ``q_mev`` above ``threshold``.

    Shape p * E * (Q - T)^2 without the Fermi function (good enough for a monitoring spectrum).
    """
    kinetic = np.linspace(threshold, q_mev, points)
    energy = kinetic + 0.511
    momentum = np.sqrt(energy**2 - 0.511**2)
    density = momentum * energy * (q_mev - kinetic) ** 2
    cdf = np.concatenate(([0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(kinetic))))
    return kinetic, cdf / cdf[-1]


#: Trigger threshold of the physics spectrum, MeV.
PHYSICS_THRESHOLD_MEV = 0.2

#: The physics mixture: (name, fraction, kind, parameters).
PHYSICS_COMPONENTS: tuple[tuple[str, float, str, tuple[float, ...]], ...] = (
    ("Po210 alpha (quenched)", 0.22, "line", (0.45, 0.0)),
    ("Bi210 beta", 0.24, "beta", (1.162,)),
    ("Kr85 beta", 0.10, "beta", (0.687,)),
    ("Bi214 gamma", 0.10, "line", (0.609, 0.0)),
    ("K40 gamma", 0.11, "line", (1.461, 0.0)),
    ("Tl208 gamma", 0.08, "line", (2.614, 0.0)),
    ("external gammas", 0.09, "exponential", (1.0, 5.0)),
    ("n-H capture", 0.055, "line", (2.223, 0.0)),
    ("high-energy (spallation, Michel)", 0.005, "uniform", (10.0, 60.0)),
)


def physics_energies(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` visible energies (MeV) from the physics mixture, all above the trigger threshold."""
    fractions = np.array([c[1] for c in PHYSICS_COMPONENTS])
    which = rng.choice(len(PHYSICS_COMPONENTS), size=n, p=fractions / fractions.sum())
    energy = np.empty(n)
    for index, (_name, _fraction, kind, params) in enumerate(PHYSICS_COMPONENTS):
        selected = which == index
        count = int(selected.sum())
        if not count:
            continue
        if kind == "line":
            energy[selected] = params[0]
        elif kind == "beta":
            grid, cdf = _beta_cdf(params[0], PHYSICS_THRESHOLD_MEV)
            energy[selected] = np.interp(rng.random(count), cdf, grid)
        elif kind == "exponential":
            slope, maximum = params
            # Truncated exponential above the threshold, by inversion.
            span = 1.0 - np.exp(-(maximum - PHYSICS_THRESHOLD_MEV) / slope)
            energy[selected] = PHYSICS_THRESHOLD_MEV - slope * np.log1p(-rng.random(count) * span)
        else:
            energy[selected] = rng.uniform(params[0], params[1], count)
    return energy
