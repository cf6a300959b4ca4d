"""Events of one chunk, generated in a worker process.

Kept apart from :mod:`daqsim.run` and free of heavy imports (no pandas, uproot or SQL), so
that each worker process stays small: only numpy, numba and the compiled kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daqsim import kernel, model
from dqm import detector, rawformat

#: Fraction of physics background events in calibration-source runs.
SOURCE_BACKGROUND_FRACTION = 0.05


@dataclass(frozen=True)
class ChunkTask:
    """One worker's unit of work: events [first, first + n) of one file."""

    run_type: str
    seq: int
    chunk: int
    n: int
    seed: int
    state: model.DetectorState
    trigger_rate_hz: float
    source_energy: float | None
    source_z_mm: float
    laser_pe: float
    energy_mev: float | None
    vertex_mm: tuple[float, float, float] | None
    random_trigger_fraction: float


def generate_chunk(task: ChunkTask) -> dict[str, np.ndarray]:
    """Events of one chunk: hits, trigger information and truth (runs in a worker)."""
    rng = np.random.default_rng([task.seed, task.seq, task.chunk, 1])
    n = task.n
    kind = np.full(n, kernel.KIND_SCINTILLATION, dtype=np.int8)
    trigger_type = np.full(n, rawformat.TRIGGER_GLOBAL, dtype=np.int8)
    energy = np.zeros(n)
    vertex = np.zeros((n, 3))

    def physics(selected: np.ndarray) -> None:
        count = int(selected.sum())
        energy[selected] = (
            task.energy_mev if task.energy_mev is not None else model.physics_energies(rng, count)
        )
        vertex[selected] = (
            task.vertex_mm if task.vertex_mm is not None else model.uniform_vertices(rng, count)
        )

    if task.run_type == "physics":
        physics(np.ones(n, dtype=bool))
        random = rng.random(n) < task.random_trigger_fraction
        kind[random] = kernel.KIND_DARK_ONLY
        trigger_type[random] = rawformat.TRIGGER_RANDOM
        energy[random] = 0.0
    elif task.run_type == "calibration":
        background = rng.random(n) < SOURCE_BACKGROUND_FRACTION
        physics(background)
        energy[~background] = task.source_energy
        vertex[~background] = (0.0, 0.0, task.source_z_mm)
    elif task.run_type == "laser":
        kind[:] = kernel.KIND_LASER
        trigger_type[:] = rawformat.TRIGGER_LASER
    else:  # random triggers: dark noise only
        kind[:] = kernel.KIND_DARK_ONLY
        trigger_type[:] = rawformat.TRIGGER_RANDOM

    if task.run_type == "laser":
        n_pe = np.full(n, task.laser_pe * task.state.n_pmts)
    else:
        n_pe = task.state.light_yield * energy
    t0 = model.T0_NS + rng.uniform(0.0, model.TRIGGER_TICK_NS, n)
    period_ns = 1e9 / task.trigger_rate_hz
    if task.run_type == "random":
        dt_ns = np.full(n, period_ns)
    else:
        dt_ns = rng.exponential(period_ns, n)

    state = task.state
    nhits, pmt_id, adc, tdc = kernel.simulate_chunk(
        int(np.random.SeedSequence([task.seed, task.seq, task.chunk, 2]).generate_state(1)[0]),
        state.unit,
        detector.PMT_RADIUS_MM,
        state.pde_rel,
        state.gain,
        state.offset_ns,
        state.tts_sigma_ns,
        state.dark_rate_hz * detector.READOUT_WINDOW_NS * 1e-9,
        state.hot_occupancy,
        vertex,
        n_pe,
        t0,
        kind,
        detector.ATTENUATION_LENGTH_MM,
        detector.LS_GROUP_VELOCITY_MM_PER_NS,
        model.TAU_FAST_NS,
        model.TAU_SLOW_NS,
        model.FAST_FRACTION,
        model.SPE_SIGMA,
        model.LASER_SIGMA_NS,
        detector.READOUT_WINDOW_NS,
    )
    return {
        "nhits": nhits,
        "pmt_id": pmt_id,
        "adc": adc,
        "tdc": tdc,
        "trigger_type": trigger_type,
        "dt_ns": dt_ns,
        "energy_mev": energy,
        "vertex_mm": vertex,
        "t0_ns": t0,
        "kind": kind,
    }
