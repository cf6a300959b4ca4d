"""The compiled inner loop of the DAQ simulator: photo-electrons, charges and times of one chunk.

For every event and every PMT the expected number of photo-electrons is

    mu_i = n_pe / N_PMT * pde_rel_i * (R / d_i)^2 * cos(eta_i) * exp((R - d_i) / lambda)

with d_i the distance from the vertex to the PMT, eta_i the angle between the photon direction and
the PMT's axis (the radial direction), R the PMT radius and lambda the attenuation length. For a vertex
at the centre this gives exactly ``n_pe`` photo-electrons on average over all PMTs (light yield times
energy). The number of photo-electrons of a PMT is a Poisson draw; the PMT gives one hit whose charge
is the sum of the single-PE charges (gain times a Gaussian of relative width ``spe_sigma``) and whose
time is the earliest photo-electron's: vertex time + time of flight + scintillation emission (fast and
slow exponentials; none for the laser) + transit-time spread + the PMT's cable offset. Dark-noise hits
(Poisson at the PMT's rate, uniform in the window) and the hits of hot PMTs come on top, each a hit of
its own. Hits outside the readout window are lost, as in the electronics.
"""

from __future__ import annotations

import numba
import numpy as np

#: Event kinds understood by the kernel.
KIND_SCINTILLATION = 0
KIND_LASER = 1
KIND_DARK_ONLY = 2


_U64 = np.uint64
_TWO_PI = 2.0 * np.pi


@numba.njit(cache=True)
def _seed_state(seed: int) -> np.ndarray:
    """Generator state from a seed (splitmix64, so that nearby seeds give unrelated streams)."""
    z = _U64(seed) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    z = z ^ (z >> _U64(31))
    state = np.empty(1, dtype=np.uint64)
    state[0] = z if z != _U64(0) else _U64(1)
    return state


@numba.njit(cache=True, inline="always")
def _uniform(state: np.ndarray) -> float:
    """A uniform number in (0, 1] (xorshift64*: a few ns, plenty for a detector simulation)."""
    x = state[0]
    x ^= x >> _U64(12)
    x ^= x << _U64(25)
    x ^= x >> _U64(27)
    state[0] = x
    return float(((x * _U64(0x2545F4914F6CDD1D)) >> _U64(11)) + _U64(1)) * (
        1.0 / 9007199254740992.0
    )


@numba.njit(cache=True, inline="always")
def _exponential(state: np.ndarray) -> float:
    """An exponential number of mean 1."""
    return float(-np.log(_uniform(state)))


@numba.njit(cache=True, inline="always")
def _normal(state: np.ndarray, spare: np.ndarray) -> float:
    """A standard normal number (Box-Muller; the second number of each pair is kept in ``spare``)."""
    if spare[0] != 0.0:
        spare[0] = 0.0
        return float(spare[1])
    radius = np.sqrt(-2.0 * np.log(_uniform(state)))
    angle = _TWO_PI * _uniform(state)
    spare[0] = 1.0
    spare[1] = radius * np.sin(angle)
    return float(radius * np.cos(angle))


@numba.njit(cache=True)
def _grow(array: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(size, dtype=array.dtype)
    bigger[: array.size] = array
    return bigger


@numba.njit(cache=True, inline="always")
def _noise_hit(
    state: np.ndarray,
    spare: np.ndarray,
    pmt: int,
    gain: float,
    spe_sigma: float,
    window: float,
    n: int,
    pmt_out: np.ndarray,
    adc_out: np.ndarray,
    tdc_out: np.ndarray,
) -> None:
    """Write hit ``n``: one photo-electron of PMT ``pmt`` at a uniform time (dark noise, hot PMT)."""
    pmt_out[n] = pmt
    adc_out[n] = gain * max(0.0, 1.0 + spe_sigma * _normal(state, spare))
    tdc_out[n] = _uniform(state) * window


@numba.njit(cache=True)
def _event(
    state: np.ndarray,
    spare: np.ndarray,
    unit: np.ndarray,
    pmt_radius: float,
    pde_rel: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    tts_sigma: np.ndarray,
    dark_mu: np.ndarray,
    hot_occupancy: np.ndarray,
    vx: float,
    vy: float,
    vz: float,
    n_pe: float,
    t0: float,
    kind: int,
    attenuation_length: float,
    group_velocity: float,
    tau_fast: float,
    tau_slow: float,
    fast_fraction: float,
    spe_sigma: float,
    laser_sigma: float,
    window: float,
    pmt_out: np.ndarray,
    adc_out: np.ndarray,
    tdc_out: np.ndarray,
) -> int:
    """Hits of one event written to the scratch arrays (full: later hits are dropped); their number."""
    n_pmts = unit.shape[0]
    capacity = pmt_out.size
    r_pmt2 = pmt_radius * pmt_radius
    r2 = vx * vx + vy * vy + vz * vz
    scale = n_pe / n_pmts
    signal = kind != KIND_DARK_ONLY and scale > 0.0
    laser = kind == KIND_LASER
    signal_sum = 0.0
    signal_next = _exponential(state)
    dark_sum = 0.0
    dark_next = _exponential(state)
    n = 0
    for i in range(n_pmts):
        if signal and pde_rel[i] > 0.0:
            projection = unit[i, 0] * vx + unit[i, 1] * vy + unit[i, 2] * vz
            d2 = r_pmt2 + r2 - 2.0 * pmt_radius * projection
            d = np.sqrt(d2)
            cos_eta = (pmt_radius - projection) / d
            signal_sum += (
                scale
                * pde_rel[i]
                * (r_pmt2 / d2)
                * cos_eta
                * np.exp((pmt_radius - d) / attenuation_length)
            )
            if signal_next < signal_sum:
                first = 1e30
                k = 0
                while signal_next < signal_sum:
                    k += 1
                    signal_next += _exponential(state)
                    if laser:
                        emission = laser_sigma * _normal(state, spare)
                    elif _uniform(state) < fast_fraction:
                        emission = tau_fast * _exponential(state)
                    else:
                        emission = tau_slow * _exponential(state)
                    t = emission + tts_sigma[i] * _normal(state, spare)
                    first = min(first, t)
                # The charge of k photo-electrons: k single-PE charges of relative width spe_sigma.
                charge = k + np.sqrt(k) * spe_sigma * _normal(state, spare)
                t_hit = t0 + d / group_velocity + first + offset[i]
                if 0.0 <= t_hit < window and n < capacity:
                    pmt_out[n] = i
                    adc_out[n] = max(charge, 0.0) * gain[i]
                    tdc_out[n] = t_hit
                    n += 1
        if hot_occupancy[i] > 0.0 and _uniform(state) < hot_occupancy[i] and n < capacity:
            _noise_hit(state, spare, i, gain[i], spe_sigma, window, n, pmt_out, adc_out, tdc_out)
            n += 1
        dark_sum += dark_mu[i]
        while dark_next < dark_sum:
            dark_next += _exponential(state)
            if n < capacity:
                _noise_hit(
                    state, spare, i, gain[i], spe_sigma, window, n, pmt_out, adc_out, tdc_out
                )
                n += 1
    return n


@numba.njit(cache=True)
def simulate_chunk(
    seed: int,
    unit: np.ndarray,
    pmt_radius: float,
    pde_rel: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    tts_sigma: np.ndarray,
    dark_mu: np.ndarray,
    hot_occupancy: np.ndarray,
    vertex: np.ndarray,
    n_pe: np.ndarray,
    t0: np.ndarray,
    kind: np.ndarray,
    attenuation_length: float,
    group_velocity: float,
    tau_fast: float,
    tau_slow: float,
    fast_fraction: float,
    spe_sigma: float,
    laser_sigma: float,
    window: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hits of a chunk of events.

    Photo-electrons are drawn as a Poisson process along the PMTs' cumulative expected
    photo-electrons: unit-mean exponential steps, each step that lands in PMT i's share being one
    photo-electron of PMT i. This is exactly an independent Poisson draw per PMT, at the cost of
    the photo-electrons, in one pass that also computes the expectations and writes the hits in PMT
    order. Dark hits come from a second such process along the PMTs' dark-noise means.

    Args:
        seed: seed of the chunk (the same seed gives the same hits).
        unit: (N, 3) unit vectors from the centre to the PMTs.
        pmt_radius: radius of the PMT centres, mm.
        pde_rel: (N,) detection efficiency relative to the mean (0 for a dead PMT).
        gain: (N,) ADC counts per photo-electron.
        offset: (N,) cable offsets, ns.
        tts_sigma: (N,) transit-time spread, ns.
        dark_mu: (N,) mean dark hits per readout window (0 for a dead PMT).
        hot_occupancy: (N,) probability that a hot PMT fires in an event (0 for the others).
        vertex: (n, 3) vertices, mm.
        n_pe: (n,) mean total photo-electrons for that energy at the centre.
        t0: (n,) time of the interaction in the readout window, ns.
        kind: (n,) KIND_SCINTILLATION, KIND_LASER or KIND_DARK_ONLY.
        attenuation_length: mm.  group_velocity: mm/ns.
        tau_fast, tau_slow, fast_fraction: scintillation emission profile, ns.
        spe_sigma: relative width of the single-PE charge.
        laser_sigma: width of the laser pulse, ns.
        window: readout window, ns.

    Returns:
        ``(nhits, pmt_id, adc, tdc)``: hits per event, then the flat hit arrays in event order and,
        within an event, in PMT order (a PMT's signal hit first, then its hot and dark hits).
    """
    state = _seed_state(seed)
    spare = np.zeros(2)
    n_events = vertex.shape[0]
    n_pmts = unit.shape[0]
    # Scratch for one event: every PMT firing twice and a thousand more hits would still fit.
    scratch_size = 2 * n_pmts + 1000
    pmt_event = np.empty(scratch_size, dtype=np.int32)
    adc_event = np.empty(scratch_size, dtype=np.float32)
    tdc_event = np.empty(scratch_size, dtype=np.float32)
    pmt_out = np.empty(n_events * 4096 + scratch_size, dtype=np.int32)
    adc_out = np.empty(pmt_out.size, dtype=np.float32)
    tdc_out = np.empty(pmt_out.size, dtype=np.float32)
    nhits = np.zeros(n_events, dtype=np.int32)
    n = 0
    for e in range(n_events):
        count = _event(
            state,
            spare,
            unit,
            pmt_radius,
            pde_rel,
            gain,
            offset,
            tts_sigma,
            dark_mu,
            hot_occupancy,
            vertex[e, 0],
            vertex[e, 1],
            vertex[e, 2],
            n_pe[e],
            t0[e],
            kind[e],
            attenuation_length,
            group_velocity,
            tau_fast,
            tau_slow,
            fast_fraction,
            spe_sigma,
            laser_sigma,
            window,
            pmt_event,
            adc_event,
            tdc_event,
        )
        if n + count > pmt_out.size:
            bigger = max(n + count, 2 * pmt_out.size)
            pmt_out = _grow(pmt_out, bigger)
            adc_out = _grow(adc_out, bigger)
            tdc_out = _grow(tdc_out, bigger)
        pmt_out[n : n + count] = pmt_event[:count]
        adc_out[n : n + count] = adc_event[:count]
        tdc_out[n : n + count] = tdc_event[:count]
        nhits[e] = count
        n += count
    # Views: pickling them to the main process copies only the part in use.
    return nhits, pmt_out[:n], adc_out[:n], tdc_out[:n]
