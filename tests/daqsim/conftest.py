"""Small simulated runs shared by the simulator tests (each made once per test session)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from daqsim import SimulationConfig, SimulationResult, parse_fault, simulate_run
from dqm.config import Settings, load_settings


@pytest.fixture(scope="session")
def sim_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("simdata")
    return load_settings(env={"DQM_DATA_DIR": str(data)})


@pytest.fixture(scope="session")
def simulate(sim_settings: Settings) -> Callable[..., SimulationResult]:
    def run(**kwargs: object) -> SimulationResult:
        kwargs.setdefault("n_jobs", 1)
        kwargs.setdefault("start_time", __import__("datetime").datetime(2026, 11, 1, 8, 0))
        return simulate_run(
            SimulationConfig(**kwargs), sim_settings, overwrite=True, progress=False
        )

    return run


@pytest.fixture(scope="session")
def centre_run(simulate: Callable[..., SimulationResult]) -> SimulationResult:
    """1 MeV events at the centre, no random triggers: the light-yield reference."""
    return simulate(
        run_id=501,
        energy_mev=1.0,
        vertex_mm=(0.0, 0.0, 0.0),
        random_trigger_fraction=0.0,
        events_per_file=500,
    )


@pytest.fixture(scope="session")
def laser_run(simulate: Callable[..., SimulationResult]) -> SimulationResult:
    return simulate(run_id=502, run_type="laser", events_per_file=1500, laser_pe=0.5)


@pytest.fixture(scope="session")
def faulty_run(simulate: Callable[..., SimulationResult]) -> SimulationResult:
    faults = (
        "dead:n=25",
        "hot:n=4,occupancy=0.9",
        "noisy:n=6,rate_hz=2e6",
        "gain_drift:phi=0..30,fraction=-0.1",
        "time_shift:phi=90..120,shift_ns=8,from_seq=1",
        "ly_drop:fraction=0.2,from_seq=2",
        "rate_burst:factor=5,seq=2",
        "corrupt:seq=3",
        "missing:seq=4",
    )
    return simulate(
        run_id=503, n_files=5, events_per_file=300, faults=tuple(parse_fault(f) for f in faults)
    )
