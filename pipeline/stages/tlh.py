"""Event reconstruction, ``tlh`` method: a time-likelihood fit of the vertex and interaction time
(x, y, z, t0), seeded by the charge centroid.

The time residual of a hit, ``r = t − t0 − |v − P| / c_LS`` (calibrated hit time minus the vertex
time and the time of flight from the vertex ``v`` to the PMT at ``P``), follows the scintillation
emission profile (fast and slow exponentials) convolved with the transit-time spread of the PMT's
type. A PMT that saw ``k`` photo-electrons reports its earliest one, whose residual has the
density ``p_k(r) = k f(r) (1 − F(r))^(k−1)`` with ``f``/``F`` the single-photo-electron density and
distribution; ``k`` is the hit's charge rounded. Dark-noise hits add a flat term, from the nominal
dark rates of the PMTs over the window of hits used. The densities and their derivatives are
tabulated once per process.

The fit maximises ``Σ log(p_k(r_i) + c)`` by Fisher scoring: each step solves
``(Σ I_k J_i J_iᵀ) Δ = Σ ψ(r_i) J_i`` with ``J_i = ∂r_i/∂(x, y, z, t0)``, ``ψ = p'_k / (p_k + c)``
and ``I_k`` the Fisher information of ``p_k`` (constant per PMT type and ``k``), so one pass over the
hits per step with one table lookup per hit. The first steps use every fourth hit, the last ones
all of them. Compiled with numba; releases the GIL.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import numpy.typing as npt
from scipy import special

from dqm import detector
from pipeline.stages.fill import count

#: Range and step of the tabulated residual densities, ns.
R_LO, R_HI, R_STEP = -40.0, 160.0, 0.1
#: Multiplicities tabulated (hits of more photo-electrons use the last one).
K_MAX = 8
#: Window of hits used by the fit, relative to the seed's residuals, ns.
SELECT_LO, SELECT_HI = -25.0, 120.0
#: Most steps of the fit.
MAX_STEPS = 12
#: A step over all hits that moves the fit less than this is its last: Fisher scoring converges
#: quadratically, so from that close it lands within a few mm of the maximum (against a resolution
#: of 25-70 mm at 1-2.5 MeV).
CONVERGED_MM, CONVERGED_NS = 100.0, 0.5

_TYPE_INDEX = {"NNVT": 0, "Hamamatsu": 1}


def _exgauss(x: npt.NDArray[np.float64], tau: float, sigma: float) -> npt.NDArray[np.float64]:
    """Density of an exponential of mean ``tau`` plus a Gaussian of width ``sigma``, at ``x``."""
    lam = 1.0 / tau
    z = (lam * sigma**2 - x) / (np.sqrt(2.0) * sigma)
    gauss = np.exp(-(x**2) / (2.0 * sigma**2))
    with np.errstate(over="ignore", invalid="ignore"):
        positive: npt.NDArray[np.float64] = 0.5 * lam * gauss * special.erfcx(z)  # scipy: untyped
        negative: npt.NDArray[np.float64] = lam * np.exp(
            0.5 * (lam * sigma) ** 2 - lam * x
        ) - 0.5 * lam * gauss * special.erfcx(-z)
    return np.where(z >= 0, positive, negative)


@functools.cache
def pdf_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(p, dp, fisher, quantile10)``: densities ``p[type, k−1, i]`` of the earliest of ``k``
    photo-electrons at residual ``R_LO + i·R_STEP``, their derivatives, the Fisher information of
    each ``(type, k)``, and the 10% quantile of the single-photo-electron residual per type."""
    fine_step = 0.005
    x = np.arange(R_LO - 40.0, R_HI + 400.0, fine_step)
    grid = np.arange(R_LO, R_HI + R_STEP / 2, R_STEP)
    take = np.rint((grid - x[0]) / fine_step).astype(int)
    n_types = len(_TYPE_INDEX)
    p = np.zeros((n_types, K_MAX, grid.size))
    dp = np.zeros_like(p)
    fisher = np.zeros((n_types, K_MAX))
    quantile10 = np.zeros(n_types)
    for name, t in _TYPE_INDEX.items():
        sigma = detector.TTS_SIGMA_NS[name]
        f = detector.SCINT_FAST_FRACTION * _exgauss(x, detector.SCINT_TAU_FAST_NS, sigma) + (
            1.0 - detector.SCINT_FAST_FRACTION
        ) * _exgauss(x, detector.SCINT_TAU_SLOW_NS, sigma)
        f /= f.sum() * fine_step
        cdf = np.clip(np.cumsum(f) * fine_step, 0.0, 1.0)
        quantile10[t] = x[np.searchsorted(cdf, 0.1)]
        for k in range(1, K_MAX + 1):
            pk = k * f * (1.0 - cdf) ** (k - 1)
            dpk = np.gradient(pk, fine_step)
            inside = pk > 1e-12
            fisher[t, k - 1] = np.sum(dpk[inside] ** 2 / pk[inside]) * fine_step
            p[t, k - 1] = pk[take]
            dp[t, k - 1] = dpk[take]
    return p, dp, fisher, quantile10


@functools.cache
def _interleaved() -> np.ndarray:
    """The densities and their derivatives side by side, ``[p, dp]`` per grid point, flat."""
    p, dp, _, _ = pdf_tables()
    return np.ascontiguousarray(np.stack([p, dp], axis=-1).reshape(-1))


@functools.cache
def _pmt_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PMT positions (N, 3) in mm, type index (N,), dark hits per ns of all PMTs of each type."""
    pmts = detector.load_pmts()
    position = np.ascontiguousarray(pmts[["x_mm", "y_mm", "z_mm"]].to_numpy(np.float64))
    kind = pmts["type"].map(_TYPE_INDEX).to_numpy(np.int64)
    dark_per_ns = np.zeros(len(_TYPE_INDEX))
    for name, t in _TYPE_INDEX.items():
        dark_per_ns[t] = np.count_nonzero(kind == t) * detector.DARK_RATE_HZ[name] * 1e-9
    return position, kind, dark_per_ns


@numba.njit(cache=True, nogil=True)
def _solve4(h: np.ndarray, g: np.ndarray, out: np.ndarray) -> bool:
    """Solve the symmetric positive 4×4 system ``h x = g`` (Cholesky) into ``out``; False if singular."""
    lower = np.zeros((4, 4))
    for i in range(4):
        for j in range(i + 1):
            s = h[i, j]
            for m in range(j):
                s -= lower[i, m] * lower[j, m]
            if i == j:
                if s <= 1e-300:
                    return False
                lower[i, i] = np.sqrt(s)
            else:
                lower[i, j] = s / lower[j, j]
    y = np.zeros(4)
    for i in range(4):
        s = g[i]
        for m in range(i):
            s -= lower[i, m] * y[m]
        y[i] = s / lower[i, i]
    for i in range(3, -1, -1):
        s = y[i]
        for m in range(i + 1, 4):
            s -= lower[m, i] * out[m]
        out[i] = s / lower[i, i]
    return True


@numba.njit(cache=True, nogil=True, fastmath=True)
def _fit_events(
    pmt: np.ndarray,
    pe: np.ndarray,
    time: np.ndarray,
    nhits: np.ndarray,
    fit: np.ndarray,
    seed: np.ndarray,
    position: np.ndarray,
    kind: np.ndarray,
    table: np.ndarray,
    fisher: np.ndarray,
    onset: float,
    dark_per_ns: np.ndarray,
    pretrigger: float,
    inv_velocity: float,
    max_radius: float,
    vertex: np.ndarray,
    t0: np.ndarray,
    residual_counts: np.ndarray,
    residual_lo: float,
    residual_scale: float,
) -> tuple[int, int]:
    """Fit the events flagged in ``fit``; vertices (mm) and times (ns) into ``vertex`` and ``t0``
    (NaN for events not fitted); the residuals of their hits after the fit added to
    ``residual_counts`` (with under- and overflow bins). Returns the fit steps taken and the events not converged."""
    n_grid = (R_HI - R_LO) / R_STEP + 1
    n_grid = int(n_grid + 0.5)
    inv_step = 1.0 / R_STEP
    window = SELECT_HI - SELECT_LO
    max_hits = 0
    for e in range(nhits.size):
        max_hits = max(max_hits, nhits[e])
    # the hits of the fit, one row (one cache line) each: PMT position (3), time, offset of its
    # density in the table, dark-noise term, Fisher information
    sel = np.empty((max_hits, 8), dtype=np.float32)
    all_hit = np.empty(max_hits, dtype=np.int64)
    all_r0 = np.empty(max_hits)
    fails = 0
    onset_counts = np.zeros(1400, dtype=np.int64)  # residuals at the seed, 1 ns bins from -200 ns
    h = np.zeros((4, 4))
    g = np.zeros(4)
    step = np.zeros(4)
    steps_taken = 0
    start = 0
    for e in range(nhits.size):
        stop = start + nhits[e]
        vertex[e, 0] = vertex[e, 1] = vertex[e, 2] = np.nan
        t0[e] = np.nan
        if not fit[e]:
            start = stop
            continue
        vx, vy, vz = seed[e, 0], seed[e, 1], seed[e, 2]
        # --- seed time: the onset of the residual distribution at the seed vertex
        onset_counts[:] = 0
        n_all = 0
        for i in range(start, stop):
            if time[i] < pretrigger:
                continue
            q = pmt[i]
            dx = position[q, 0] - vx
            dy = position[q, 1] - vy
            dz = position[q, 2] - vz
            r0 = time[i] - np.sqrt(dx * dx + dy * dy + dz * dz) * inv_velocity
            all_hit[n_all] = i
            all_r0[n_all] = r0
            n_all += 1
            b = int(r0 + 200.0)
            if 0 <= b < onset_counts.size:
                onset_counts[b] += 1
        best, best_bin, running = -1, 0, 0
        for b in range(onset_counts.size):  # the densest 10 ns
            running += onset_counts[b]
            if b >= 10:
                running -= onset_counts[b - 10]
            if running > best:
                best, best_bin = running, b - 9
        lo_bin = max(best_bin - 30, 0)
        hi_bin = min(best_bin + 100, onset_counts.size)
        total = 0
        for b in range(lo_bin, hi_bin):
            total += onset_counts[b]
        if total < 5:
            start = stop
            continue
        target, cumulative, b = 0.1 * total, 0, lo_bin
        while b < hi_bin - 1 and cumulative + onset_counts[b] < target:
            cumulative += onset_counts[b]
            b += 1
        tt = b - 200.0 + (target - cumulative) / max(onset_counts[b], 1) - onset
        # --- the hits of the fit: residual at the seed within the window; the others kept aside
        n_sel = 0
        n_out = 0
        n_type0 = 0
        for a in range(n_all):
            i = all_hit[a]
            r = all_r0[a] - tt
            if r < SELECT_LO or r > SELECT_HI:
                all_hit[n_out] = i  # compacted in place: n_out <= a
                n_out += 1
                continue
            q = pmt[i]
            k = int(pe[i] + 0.5)
            k = max(1, min(k, K_MAX))
            t = kind[q]
            row = sel[n_sel]
            row[0] = position[q, 0]
            row[1] = position[q, 1]
            row[2] = position[q, 2]
            row[3] = time[i]
            row[4] = (t * K_MAX + (k - 1)) * n_grid
            row[5] = t
            row[6] = fisher[t, k - 1]
            n_type0 += t == 0
            n_sel += 1
        if n_sel < 8:
            start = stop
            continue
        # the flat dark-noise term of each type, as a density relative to the signal's
        c = np.zeros(2)
        for t in range(2):
            n_t = n_type0 if t == 0 else n_sel - n_type0
            expected_dark = dark_per_ns[t] * window
            eta = min(expected_dark / max(n_t, 1), 0.9)
            c[t] = eta / ((1.0 - eta) * window)
        for j in range(n_sel):
            sel[j, 5] = c[int(sel[j, 5])]
        # --- Fisher scoring
        converged = False
        for iteration in range(MAX_STEPS):
            stride = (
                8 if iteration < 2 and n_sel > 800 else (4 if iteration < 3 and n_sel > 400 else 1)
            )
            full = stride == 1
            h[:, :] = 0.0
            g[:] = 0.0
            for j in range(0, n_sel, stride):
                row = sel[j]
                dx = vx - row[0]
                dy = vy - row[1]
                dz = vz - row[2]
                d = np.sqrt(dx * dx + dy * dy + dz * dz)
                r = row[3] - tt - d * inv_velocity
                u = (r - R_LO) * inv_step + 0.5
                if u < 0.0 or u >= n_grid:
                    continue
                at = 2 * (int(row[4]) + int(u))
                psi = table[at + 1] / (table[at] + row[5])
                scale = -inv_velocity / max(d, 1.0)
                jx = dx * scale
                jy = dy * scale
                jz = dz * scale
                info = row[6]
                g[0] += psi * jx
                g[1] += psi * jy
                g[2] += psi * jz
                g[3] -= psi
                h[0, 0] += info * jx * jx
                h[1, 0] += info * jy * jx
                h[1, 1] += info * jy * jy
                h[2, 0] += info * jz * jx
                h[2, 1] += info * jz * jy
                h[2, 2] += info * jz * jz
                h[3, 0] -= info * jx
                h[3, 1] -= info * jy
                h[3, 2] -= info * jz
                h[3, 3] += info
            steps_taken += 1
            for a in range(4):
                for b2 in range(a):
                    h[b2, a] = h[a, b2]
            if not _solve4(h, g, step):
                step[:] = 0.0
            shift = np.sqrt(step[0] ** 2 + step[1] ** 2 + step[2] ** 2)
            if shift > 1000.0:  # at most 1 m and 5 ns a step
                for a in range(3):
                    step[a] *= 1000.0 / shift
            step[3] = min(max(step[3], -5.0), 5.0)
            vx += step[0]
            vy += step[1]
            vz += step[2]
            tt += step[3]
            radius = np.sqrt(vx * vx + vy * vy + vz * vz)
            if radius > max_radius:
                vx *= max_radius / radius
                vy *= max_radius / radius
                vz *= max_radius / radius
            if full and shift < CONVERGED_MM and abs(step[3]) < CONVERGED_NS:
                converged = True
                break
        if not converged:
            fails += 1
        # the residuals at the final vertex
        for j in range(n_sel):
            row = sel[j]
            dx = vx - row[0]
            dy = vy - row[1]
            dz = vz - row[2]
            r = row[3] - tt - np.sqrt(dx * dx + dy * dy + dz * dz) * inv_velocity
            count(residual_counts, r, residual_lo, residual_scale)
        vertex[e, 0], vertex[e, 1], vertex[e, 2] = vx, vy, vz
        t0[e] = tt
        # --- residuals of the event's other hits
        for a in range(n_out):
            i = all_hit[a]
            q = pmt[i]
            dx = position[q, 0] - vx
            dy = position[q, 1] - vy
            dz = position[q, 2] - vz
            r = time[i] - tt - np.sqrt(dx * dx + dy * dy + dz * dz) * inv_velocity
            count(residual_counts, r, residual_lo, residual_scale)
        start = stop
    return steps_taken, fails


def fit_vertices(
    pmt: np.ndarray,
    pe: np.ndarray,
    time: np.ndarray,
    nhits: np.ndarray,
    seed: np.ndarray,
    fit: np.ndarray | None = None,
    residual_counts: np.ndarray | None = None,
    residual_binning: tuple[float, float] = (-50.0, 1.0),
) -> tuple[np.ndarray, np.ndarray, int]:
    """Vertices (n, 3) in mm and interaction times (n,) in ns of a chunk of events.

    Args:
        pmt, pe, time: PMT id, charge (PE) and calibrated time (ns) of every hit, event after event.
        nhits: hits per event.
        seed: starting vertices (n, 3), e.g. the charge centroid's.
        fit: which events to fit (default: all); the others get NaN.
        residual_counts: if given, counts (underflow, regular bins, overflow) to which the
            residuals of the fitted events' hits after the fit are added; ``residual_binning``
            gives the start of the bins and bins per ns.

    Returns:
        The vertices, the times and the number of events whose fit did not converge.
    """
    _, _, fisher, quantile10 = pdf_tables()
    position, kind, dark_per_ns = _pmt_arrays()
    n = nhits.size
    vertex = np.empty((n, 3))
    t0 = np.empty(n)
    counts = residual_counts if residual_counts is not None else np.zeros(402)
    lo, scale = residual_binning
    # the onset quantile of the mixture of types, weighted by their share of the light
    hamamatsu_share = 0.3
    onset = (1 - hamamatsu_share) * quantile10[0] + hamamatsu_share * quantile10[1]
    _, not_converged = _fit_events(
        np.ascontiguousarray(pmt),
        np.ascontiguousarray(pe),
        np.ascontiguousarray(time),
        np.ascontiguousarray(nhits, dtype=np.int64),
        np.ones(n, dtype=np.bool_) if fit is None else np.ascontiguousarray(fit, dtype=np.bool_),
        np.ascontiguousarray(seed, dtype=np.float64),
        position,
        kind,
        _interleaved(),
        fisher,
        float(onset),
        dark_per_ns,
        detector.PRETRIGGER_WINDOW_NS,
        1.0 / detector.LS_GROUP_VELOCITY_MM_PER_NS,
        detector.PMT_RADIUS_MM,
        vertex,
        t0,
        counts,
        lo,
        scale,
    )
    return vertex, t0, not_converged
