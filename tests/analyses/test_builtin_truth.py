"""The built-in analyses against the simulator's truth: runs simulated with known faults, processed
and merged as production does (tests/analyses/simruns.py), each analysis run as declared in
analyses.toml, its figures compared with what the simulator put in.

Event counts are chosen for the tolerances and no larger (the reasoning beside each run); the runs
are shared by the tests of this module.
"""

from __future__ import annotations

import numpy as np
import pytest
from declared import error, run_analysis, value
from simruns import laser_calibration, manifest, run_view, simulate

from daqsim import SimulationResult
from dqm import detector
from dqm.analyses import RunView
from dqm.analyses.builtin.common import health, type_masks
from dqm.analyses.builtin.energy import PHYSICS_LINES_MEV, PO210_VISIBLE_MEV
from dqm.config import Settings

pytestmark = pytest.mark.slow

Run = tuple[SimulationResult, RunView]


def truth(settings: Settings, result: SimulationResult, seq: int = 0) -> dict[str, np.ndarray]:
    """The truth sidecar of one file (true per-PMT constants and per-event energies)."""
    path = settings.data_dir / "truth" / str(result.run_id) / f"{result.run_id}.{seq}.truth.npz"
    with np.load(path) as content:
        return {key: content[key] for key in content.files}


# --- the runs ------------------------------------------------------------------------------------
#
# Physics runs of 20,000 events (20 s at 1 kHz): the 40K line holds 11 % of them (2,200), n-H
# 5.5 % (1,100), 208Tl 8 % (1,600). With σ/E ≈ 2 % each position is known to 2 % / √N ≈ 0.05 %,
# a tenth of the 0.5 % tolerance, which must also hold the reconstruction's own +0.2-0.35 % for
# events spread over the volume (see dqm.analyses.builtin.energy).


@pytest.fixture(scope="module")
def clean_physics(analysis_settings: Settings) -> Run:
    result = simulate(analysis_settings, 9001, events_per_file=20_000)
    return result, run_view(result)


@pytest.fixture(scope="module")
def dimmer_physics(analysis_settings: Settings) -> Run:
    result = simulate(
        analysis_settings, 9002, events_per_file=20_000, faults=("ly_drop:fraction=0.03",)
    )
    return result, run_view(result)


# Faulty physics: three files of 1,000 events at 10 Hz, the middle one at five times the rate, so
# that the burst (20 s) fills two 10-s bins; 3,000 events give 5 million hit-time residuals, whose
# core width is then known to 0.003 ns (0.04 %). The faults' defaults: hot PMTs fire in 99.8 % of
# the events, above the default hot cut of 99 %.
FAULTS = (
    "dead:n=20",
    "hot:n=5",
    "noisy:n=10",
    "time_shift:phi=90..120,shift_ns=5",
    "rate_burst:factor=5,seq=1",
)


@pytest.fixture(scope="module")
def faulty_physics(analysis_settings: Settings) -> Run:
    result = simulate(
        analysis_settings,
        9003,
        n_files=3,
        events_per_file=1000,
        trigger_rate_hz=10.0,
        faults=FAULTS,
    )
    return result, run_view(result)


# Laser runs: a PMT's gain from the sums is known to ~1/√(flashes × PE a flash) (with the single-PE
# width): 10,000 flashes at 0.1 PE a PMT give 1.1 % a PMT, and the calibration from the same
# amount 1.2 %, 1.6 % together. A PMT that did not move then passes a 5 % cut at 3.1 σ (0.2 %
# of 16,100 PMTs: ~35 of them), and one that moved by -10 % misses it as rarely, so the count
# lands within 3 % of the ~1,500 drifted PMTs; 4 times fewer flashes would double the error and
# let ~1,000 unmoved PMTs through. Low intensity keeps the runs small (2,600 hits a flash).
LASER = {"run_type": "laser", "laser_pe": 0.1, "events_per_file": 10_000}


@pytest.fixture(scope="module")
def drifted_laser(analysis_settings: Settings) -> Run:
    reference = simulate(analysis_settings, 9004, **LASER)
    calibration = laser_calibration(reference)
    # One file: the drift reaches its full -10 % in the last file.
    result = simulate(analysis_settings, 9005, faults=("gain_drift:fraction=-0.1",), **LASER)
    return result, run_view(result, calibration)


# --- energy scale and light yield ----------------------------------------------------------------


def test_energy_scale_on_a_clean_run(analysis_settings: Settings, clean_physics: Run) -> None:
    result, run = clean_physics
    scale = run_analysis("energy_scale", run)
    for name, line in PHYSICS_LINES_MEV.items():
        assert abs(value(scale, f"{name}_ratio") - 1) < 0.005, (name, scale.variables)
        assert 0.0002 < error(scale, f"{name}_ratio") < 0.002
        assert value(scale, f"{name}_peak_mev") == pytest.approx(line, rel=0.005)
        # 3 %/√E at most (photo-electron statistics alone give 2.4 %/√E).
        assert 0.5 < value(scale, f"{name}_resolution") < 3.0 / line**0.5
    assert value(scale, "po210_peak_mev") == pytest.approx(PO210_VISIBLE_MEV, rel=0.01)
    energies = truth(analysis_settings, result)["energy_mev"]
    po210_rate = np.count_nonzero(energies == PO210_VISIBLE_MEV) / run.run.duration_s
    rate, rate_error = value(scale, "po210_rate_hz"), error(scale, "po210_rate_hz")
    assert abs(rate - po210_rate) < 3 * rate_error and rate_error < 0.06 * po210_rate


def test_energy_scale_follows_a_light_yield_drop(dimmer_physics: Run) -> None:
    _result, run = dimmer_physics
    scale = run_analysis("energy_scale", run)
    for name in PHYSICS_LINES_MEV:
        assert abs(value(scale, f"{name}_ratio") - 0.97) < 0.005, (name, scale.variables)


@pytest.mark.parametrize(
    ("source", "z_mm", "light_yield"),
    [("Cs137", 0.0, 1785.0), ("Cs137", 0.0, 1700.0), ("Co60", -8000.0, 1700.0)],
)
def test_light_yield_is_recovered(
    analysis_settings: Settings, source: str, z_mm: float, light_yield: float
) -> None:
    # 2,000 source events: σ/E ≈ 3.3 % at 0.662 MeV gives the peak to 0.08 %, against 1 %.
    result = simulate(
        analysis_settings,
        9010,
        run_type="calibration",
        source=source,
        source_z_mm=z_mm,
        light_yield=light_yield,
        events_per_file=2000,
    )
    measured = run_analysis("light_yield", run_view(result))
    assert value(measured, "light_yield_pe_per_mev") == pytest.approx(light_yield, rel=0.01)
    assert error(measured, "light_yield_pe_per_mev") < 0.002 * light_yield
    assert measured.data["source"] == source


# --- PMTs ----------------------------------------------------------------------------------------


def test_pmt_health_finds_the_injected_faults(faulty_physics: Run) -> None:
    result, run = faulty_physics
    pmts = manifest(result)["pmts"]
    found = run_analysis("pmt_health", run)
    masks = type_masks()
    for kind in ("dead", "hot", "noisy"):
        assert found.data[f"{kind}_ids"] == sorted(pmts[kind])
        assert value(found, f"n_{kind}") == len(pmts[kind])
        for type_name, suffix in (("NNVT", "nnvt"), ("Hamamatsu", "hamamatsu")):
            of_type = int(masks[type_name][pmts[kind]].sum())
            assert value(found, f"n_{kind}_{suffix}") == of_type
    assert value(found, "live_fraction") == pytest.approx(100 * (1 - 20 / detector.N_PMTS))


def test_a_clean_run_has_no_faulty_pmt(clean_physics: Run) -> None:
    _result, run = clean_physics
    found = run_analysis("pmt_health", run)
    assert value(found, "n_dead") == value(found, "n_hot") == value(found, "n_noisy") == 0
    assert value(found, "live_fraction") == 100.0


# 20,000 events give 3.6 ms of pre-trigger windows: 54 dark hits a Hamamatsu PMT, 176 an NNVT one,
# so each type's mean is known to 0.1 % beside the 20 % spread between PMTs.
@pytest.mark.parametrize("which", ["clean_physics", "dimmer_physics"])
def test_dark_rates_are_the_simulated_ones(
    analysis_settings: Settings, which: str, request: pytest.FixtureRequest
) -> None:
    result, run = request.getfixturevalue(which)
    rates = run_analysis("dark_rate", run)
    assert run.pmt is not None
    good = health(run.pmt).good
    true_rate = truth(analysis_settings, result)["dark_rate_hz"]
    for type_name, suffix in (("NNVT", "nnvt"), ("Hamamatsu", "hamamatsu")):
        of_type = good & type_masks()[type_name]
        for statistic in ("median", "mean"):
            measured = value(rates, f"{statistic}_{suffix}_hz")
            assert measured == pytest.approx(detector.DARK_RATE_HZ[type_name], rel=0.03)
            simulated = getattr(np, statistic)(true_rate[of_type])
            assert abs(measured - simulated) < 4 * error(rates, f"{statistic}_{suffix}_hz")


def test_laser_counts_the_pmts_whose_gain_drifted(
    analysis_settings: Settings, drifted_laser: Run
) -> None:
    result, run = drifted_laser
    drifted = set(manifest(result)["pmts"]["gain_drift"])
    gains = run_analysis("laser_gain_timing", run)
    moved = set(gains.data["gain_moved_ids"])
    assert value(gains, "gain_moved") == pytest.approx(len(drifted), rel=0.05)
    assert len(moved & drifted) > 0.97 * len(drifted)
    true_gain = truth(analysis_settings, result)["gain"]
    for type_name, suffix in (("NNVT", "nnvt"), ("Hamamatsu", "hamamatsu")):
        true_mean = true_gain[type_masks()[type_name]].mean()
        assert value(gains, f"gain_mean_{suffix}") == pytest.approx(true_mean, rel=0.003)
        assert value(gains, f"gain_spread_{suffix}") == pytest.approx(
            100 * true_gain[type_masks()[type_name]].std() / true_mean, abs=1.0
        )
    # The offsets did not move: no sector stands out beyond its noise.
    assert abs(value(gains, "offset_sector_max_ns")) < 4 * error(gains, "offset_sector_max_ns")


def test_a_drifted_sector_stands_out_in_charge(drifted_laser: Run) -> None:
    _result, run = drifted_laser
    sectors = run_analysis("sector_occupancy", run)
    # The drifted PMTs are those at φ 0..30 degrees: the sector [0, 30).
    assert sectors.data["charge_worst_sector_deg"] == [0.0, 30.0]
    deviation = value(sectors, "charge_max_deviation")
    # -10 % against a mean that the sector itself pulls down by 1/12 of that.
    assert deviation == pytest.approx(-100 * (1 - 0.9 / (1 - 0.1 / 12)), abs=1.0)
    others = [d for d in sectors.data["charge_deviation_pct"] if d != pytest.approx(deviation)]
    assert max(abs(d) for d in others) < 2.0
    # Gains do not change whether a PMT fires.
    assert abs(value(sectors, "hit_rate_max_deviation")) < 1.0


# --- running and reconstruction ------------------------------------------------------------------


def test_trigger_rate_sees_a_burst(faulty_physics: Run, clean_physics: Run) -> None:
    result, run = faulty_physics
    rates = run_analysis("trigger_rate", run)
    assert value(rates, "max_rate_ratio") >= 3.0
    assert value(rates, "live_time_s") == pytest.approx(run.run.duration_s)
    assert value(rates, "trigger_rate_hz") == pytest.approx(
        result.n_events / run.run.duration_s, rel=1e-6
    )
    _clean_result, clean = clean_physics
    steady = run_analysis("trigger_rate", clean)
    assert value(steady, "max_rate_ratio") == pytest.approx(
        1.0, abs=5 * error(steady, "max_rate_ratio")
    )
    assert value(steady, "trigger_rate_hz") == pytest.approx(1000.0, rel=0.03)


def test_a_time_shift_widens_the_residual(
    clean_physics: Run, dimmer_physics: Run, faulty_physics: Run
) -> None:
    widths = {}
    for name, (_result, run) in (
        ("clean", clean_physics),
        ("dimmer", dimmer_physics),
        ("shifted", faulty_physics),
    ):
        rec = run_analysis("reconstruction", run)
        widths[name] = (value(rec, "residual_core_width_ns"), error(rec, "residual_core_width_ns"))
        assert value(rec, "convergence") > 99.0
        assert value(rec, "mean_r3") == pytest.approx(0.5, abs=5 * error(rec, "mean_r3"))
        assert abs(value(rec, "mean_z_mm")) < 5 * error(rec, "mean_z_mm")
    (clean, clean_error), (dimmer, _), (shifted, shifted_error) = widths.values()
    # A 3 % dimmer detector times its hits as well: the width stays within 0.1 %.
    assert dimmer == pytest.approx(clean, rel=0.001)
    # 5 ns on 1/12 of the PMTs: wider by several times that, and by many standard deviations.
    assert shifted - clean > 0.003 * clean
    assert shifted - clean > 5 * np.hypot(clean_error, shifted_error)
