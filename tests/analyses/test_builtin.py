"""The built-in analyses on runs built by hand: their declarations, the fit on known spectra, and
the edge cases (no events, too few for a fit, no source, no input). The physics against the
simulator: test_builtin_truth.py."""

from __future__ import annotations

import datetime as dt
import inspect

import hist
import numpy as np
import pytest
from declared import check_result, declarations, function_of, run_analysis, value
from scipy import stats

from daqsim import model
from dqm import detector, eventtable
from dqm.analyses import (
    CalibrationInfo,
    EventColumns,
    FileInfo,
    MissingInput,
    PmtStatistics,
    ProcessingInfo,
    Provenance,
    RunInfo,
    RunView,
)
from dqm.analyses.builtin import fitting
from dqm.analyses.builtin.common import type_masks
from dqm.analyses.builtin.pmts import gain_ratio
from dqm.analyses.builtin.reconstruction import core_width
from dqm.pmtstats import PMT_ARRAYS

N = detector.N_PMTS
START = dt.datetime(2026, 11, 3, 8, 0)

# --- declarations --------------------------------------------------------------------------------

NAMES = [
    "energy_scale",
    "light_yield",
    "pmt_health",
    "dark_rate",
    "laser_gain_timing",
    "trigger_rate",
    "reconstruction",
    "sector_occupancy",
    "processing",
]
REQUIRES = {
    "calib_histograms",
    "rec_histograms",
    "pmt_stats",
    "event_table",
    "calibration",
    "previous_calibration",
    "run_end",
}


def test_the_nine_analyses_are_declared_with_their_functions() -> None:
    assert list(declarations()) == NAMES
    for name, declaration in declarations().items():
        function = function_of(name)
        signature = inspect.signature(function)
        assert set(declaration.parameters) <= set(signature.parameters) - {"run"}, name
        assert set(declaration.requires) <= REQUIRES, name
        assert declaration.when in ("completion", "live") and declaration.timeout_s > 0
        assert declaration.version >= 1 and declaration.description
        for variable, spec in declaration.variables.items():
            assert spec.unit and spec.meaning, (name, variable)
            low, high = spec.expected or (0, 0)
            assert low <= high, (name, variable)


def events_of(energy: np.ndarray, *, seed: int = 1) -> EventColumns:
    """An event table of these energies, vertices uniform in the sphere, 1 kHz."""
    rng = np.random.default_rng(seed)
    n = len(energy)
    vertex = model.uniform_vertices(rng, n)
    columns = {
        "x_mm": vertex[:, 0],
        "y_mm": vertex[:, 1],
        "z_mm": vertex[:, 2],
        "energy_mev": energy,
        "time_s": np.sort(rng.uniform(0, n / 1000, n)),
    }
    assert set(columns) == set(eventtable.COLUMNS)
    return EventColumns({k: np.asarray(v, np.float32) for k, v in columns.items()})


def physics_energies(n: int, *, scale: float = 1.0, seed: int = 2) -> np.ndarray:
    """The simulator's physics mixture, smeared by 2.5 %/√E and 1 %."""
    rng = np.random.default_rng(seed)
    true = model.physics_energies(rng, n) * scale
    sigma = true * np.hypot(0.025 / np.sqrt(true), 0.01)
    return true + sigma * rng.normal(size=n)


def view(**fields: object) -> RunView:
    info = fields.pop("run", None) or RunInfo(
        run_id=7, run_type="physics", start_time=START, end_time=START + dt.timedelta(seconds=100)
    )
    return RunView(run=info, **fields)  # type: ignore[arg-type]


# --- energy scale and light yield ----------------------------------------------------------------


def test_the_fit_finds_a_line_on_a_slope() -> None:
    rng = np.random.default_rng(5)
    line = rng.normal(1.5, 0.03, 3000)
    background = 1.3 + 0.4 * np.sqrt(rng.random(6000))  # rising linearly over 1.3 to 1.7
    fit = fitting.fit_peak(np.concatenate((line, background)), 1.52, 0.04)
    assert abs(fit.mean - 1.5) < 3 * fit.mean_error and fit.mean_error < 0.002
    assert abs(fit.sigma - 0.03) < 3 * fit.sigma_error
    assert abs(fit.signal - 3000) < 3 * fit.signal_error
    # The window follows the line: centred on it, ±2.5 widths (of the fit before the last).
    low, high = fit.window
    assert 0.5 * (low + high) == pytest.approx(fit.mean, abs=0.05 * fit.sigma)
    assert 0.5 * (high - low) == pytest.approx(2.5 * fit.sigma, rel=0.1)


def test_a_fit_without_a_line_says_so() -> None:
    flat = np.random.default_rng(6).uniform(1.0, 2.0, 5000)
    with pytest.raises(fitting.NotEnoughEvents, match="no line found"):
        fitting.fit_peak(flat, 1.5, 0.03)
    with pytest.raises(fitting.NotEnoughEvents, match="only 10 events in the fit window"):
        fitting.fit_peak(np.full(10, 1.5), 1.5, 0.03)


def test_energy_scale_on_a_known_spectrum() -> None:
    # 200,000 events of the physics mixture 2 % high: each line's ratio at 1.02.
    run = view(events=events_of(physics_energies(200_000, scale=1.02)))
    scale = run_analysis("energy_scale", run)
    for name in ("k40", "nh", "tl208"):
        assert value(scale, f"{name}_ratio") == pytest.approx(1.02, abs=0.001)
    # 22 % of 200,000 events are 210Po, in 100 s.
    assert value(scale, "po210_rate_hz") == pytest.approx(0.22 * 200_000 / 100, rel=0.03)


@pytest.mark.parametrize("n_events", [0, 30])
def test_energy_scale_without_enough_events_leaves_the_lines_out(n_events: int) -> None:
    run = view(events=events_of(physics_energies(n_events)))
    scale = run_analysis("energy_scale", run)
    assert scale.variables == {}
    reasons = scale.data["not_measured"]
    assert set(reasons) == {"k40", "nh", "tl208", "po210"}
    assert "a fit needs 50" in reasons["k40"]


def test_energy_scale_needs_the_event_table() -> None:
    with pytest.raises(MissingInput, match="declare 'event_table'"):
        run_analysis("energy_scale", view())


def source_run(source: str | None, energy: np.ndarray) -> RunView:
    info = RunInfo(run_id=8, run_type="calibration", source=source, source_z_mm=0.0)
    return view(run=info, events=events_of(energy))


def test_light_yield_of_a_known_peak() -> None:
    rng = np.random.default_rng(9)
    peak = rng.normal(0.662 * 0.96, 0.022, 3000)  # a detector 4 % dimmer than nominal
    measured = run_analysis("light_yield", source_run("Cs137", peak))
    assert value(measured, "light_yield_pe_per_mev") == pytest.approx(0.96 * 1785, rel=0.002)
    assert value(measured, "resolution") == pytest.approx(100 * 0.022 / (0.662 * 0.96), rel=0.1)


def test_light_yield_without_a_source_says_so() -> None:
    with pytest.raises(ValueError, match="run 8 names no calibration source"):
        run_analysis("light_yield", source_run(None, np.full(100, 0.662)))
    with pytest.raises(ValueError, match="source 'Sr90', whose line is not known"):
        run_analysis("light_yield", source_run("Sr90", np.full(100, 0.662)))


def test_light_yield_with_too_few_events_leaves_it_out() -> None:
    measured = run_analysis("light_yield", source_run("Cs137", np.full(0, 0.662)))
    assert measured.variables == {}
    assert "a fit needs" in measured.data["not_measured"]["light_yield"]


# --- PMTs ----------------------------------------------------------------------------------------


def pmt_statistics(n_events: int, *, seed: int = 3, **rates: object) -> PmtStatistics:
    """Sums of a run whose PMTs fire in 10 % of the events, with the nominal dark rates; changes by
    PMT id in ``rates``: ``hit_rate={ids: rate}``, ``dark_rate_hz={ids: rate}``."""
    rng = np.random.default_rng(seed)
    hit_rate = np.full(N, 0.1)
    dark = np.where(type_masks()["Hamamatsu"], 15e3, 49e3)
    for ids, rate in rates.get("hit_rate", {}).items():  # type: ignore[attr-defined]
        hit_rate[list(ids)] = rate
    for ids, rate in rates.get("dark_rate_hz", {}).items():  # type: ignore[attr-defined]
        dark[list(ids)] = rate
    livetime_ns = n_events * detector.PRETRIGGER_WINDOW_NS
    fired = rng.binomial(n_events, hit_rate).astype(float)
    sums = {
        "hit_count": fired,
        "fired_events": fired,
        "charge_sum": fired * 1.0,
        "time_sum": fired * 300.0,
        "dark_count": rng.poisson(dark * livetime_ns * 1e-9).astype(float),
        "signal_hits": fired * 0.1,
        "signal_charge_sum": fired * 0.1,
        "signal_time_sum": fired * 0.1 * 300.0,
    }
    assert set(sums) == set(PMT_ARRAYS)
    return PmtStatistics(n_events=n_events, livetime_ns=livetime_ns, sums=sums)


def test_pmt_health_of_known_pmts() -> None:
    hamamatsu = np.flatnonzero(type_masks()["Hamamatsu"])
    nnvt = np.flatnonzero(type_masks()["NNVT"])
    dead, hot, noisy = (1, 2, int(hamamatsu[0])), (int(nnvt[5]),), (int(nnvt[9]), int(hamamatsu[9]))
    pmt = pmt_statistics(
        20_000,
        hit_rate={dead: 0.0, hot: 0.999},
        # a hot PMT's pre-trigger rate is high too: it stays hot, not noisy
        dark_rate_hz={noisy: 500e3, hot: 900e3},
    )
    found = run_analysis("pmt_health", view(pmt=pmt))
    assert found.data["dead_ids"] == sorted(dead)
    assert found.data["hot_ids"] == sorted(hot)
    assert found.data["noisy_ids"] == sorted(noisy)
    assert (value(found, "n_dead_nnvt"), value(found, "n_dead_hamamatsu")) == (2, 1)
    assert value(found, "live_fraction") == pytest.approx(100 * (1 - 3 / N))


def test_pmt_health_of_a_run_too_short_classifies_nothing() -> None:
    found = run_analysis("pmt_health", view(pmt=pmt_statistics(50)))
    assert found.variables == {}
    assert (
        found.data["not_measured"]["pmts"] == "the run has 50 events; 200 are needed to classify."
    )
    empty = run_analysis("dark_rate", view(pmt=pmt_statistics(0)))
    assert (
        empty.variables == {}
        and "no pre-trigger live time" in empty.data["not_measured"]["dark_rate"]
    )


def test_the_pmt_analyses_need_the_pmt_statistics() -> None:
    for name in ("pmt_health", "dark_rate", "sector_occupancy"):
        with pytest.raises(MissingInput, match="has no per-PMT statistics"):
            run_analysis(name, view())
    with pytest.raises(MissingInput, match="no calibration was loaded"):
        run_analysis("laser_gain_timing", view(pmt=pmt_statistics(1000)))


def test_gain_ratio_from_poisson_flashes() -> None:
    # 20,000 flashes of 1 photo-electron a PMT on average, gains 8 % above the calibration's.
    rng = np.random.default_rng(4)
    n, mu, ratio, n_pmts = 20_000, 1.0, 1.08, 200
    pe = rng.poisson(mu, size=(n_pmts, n))
    charge = ratio * (pe + 0.3 * np.sqrt(pe) * rng.normal(size=pe.shape))
    sums = {
        "hit_count": (pe > 0).sum(axis=1).astype(float),
        "fired_events": (pe > 0).sum(axis=1).astype(float),
        "charge_sum": charge.sum(axis=1),
        "time_sum": np.zeros(n_pmts),
        "dark_count": np.zeros(n_pmts),
    }
    measured = gain_ratio(PmtStatistics(n_events=n, livetime_ns=n * 180.0, sums=sums))
    assert measured.mean() == pytest.approx(ratio, rel=0.002)
    assert measured.std() / ratio < 0.015


def test_laser_gains_against_the_calibration() -> None:
    pmt = pmt_statistics(10_000)
    gains = np.full(N, 90.0)
    calibration = CalibrationInfo(
        version=3, valid_from_run=1, source_run=1, gains=gains, time_offsets_ns=np.zeros(N)
    )
    info = RunInfo(run_id=9, run_type="laser")
    measured = run_analysis("laser_gain_timing", view(run=info, pmt=pmt, calibration=calibration))
    # 10 % occupancy with a charge of 1 calibrated PE a hit: λ = -ln 0.9, ratio 0.1 / λ.
    expected = 0.1 / -np.log(0.9)
    assert value(measured, "gain_ratio_mean") == pytest.approx(expected, rel=0.01)
    assert value(measured, "gain_mean_nnvt") == pytest.approx(90 * expected, rel=0.01)
    assert "calibration_gain_changed" not in measured.variables  # no previous calibration
    # Against a previous calibration in which 7 good PMTs had gains 6 % lower.
    earlier = gains.copy()
    earlier[100:107] = 90.0 / 1.06
    previous = CalibrationInfo(
        version=2, valid_from_run=1, source_run=1, gains=earlier, time_offsets_ns=np.zeros(N)
    )
    run = view(run=info, pmt=pmt, calibration=calibration, previous_calibration=previous)
    assert value(run_analysis("laser_gain_timing", run), "calibration_gain_changed") == 7


# --- running and reconstruction ------------------------------------------------------------------


def rec_histograms(times_s: np.ndarray) -> dict[str, dict[str, hist.Hist]]:
    rates = hist.Hist(hist.axis.Regular(8640, 0, 86_400, name="time"))
    rates.fill(times_s)
    return {"rec": {"trigger_rate": rates}}


def test_trigger_rate_of_known_triggers() -> None:
    # 100 s at 50 Hz with 10 s at 250 Hz.
    times = np.concatenate(
        (np.linspace(0, 100, 5000, endpoint=False), np.linspace(40, 50, 2000, endpoint=False))
    )
    rates = run_analysis("trigger_rate", view(histograms=rec_histograms(times)))
    assert value(rates, "trigger_rate_hz") == pytest.approx(70.0)
    assert value(rates, "live_time_s") == 100.0
    assert value(rates, "max_rate_ratio") == pytest.approx(250 / 70)
    assert rates.data["max_rate_bin_s"] == [40.0, 50.0]


def test_trigger_rate_of_a_short_run_has_no_largest_bin() -> None:
    info = RunInfo(
        run_id=7, run_type="physics", start_time=START, end_time=START + dt.timedelta(seconds=4)
    )
    rates = run_analysis(
        "trigger_rate", view(run=info, histograms=rec_histograms(np.linspace(0, 4, 400)))
    )
    assert value(rates, "trigger_rate_hz") == pytest.approx(100.0)
    assert "max_rate_ratio" not in rates.variables
    assert "shorter than a bin" in rates.data["not_measured"]["max_rate_ratio"]
    with pytest.raises(MissingInput, match="has no merged histogram rec/trigger_rate"):
        run_analysis("trigger_rate", view())


def test_core_width_of_a_gaussian() -> None:
    edges = np.arange(-50.0, 351.0)
    counts = 1e6 * np.diff(stats.norm.cdf(edges, loc=7.3, scale=4.0))
    centre, width, _error = core_width(counts, edges, half_width=20.0)
    # ±20 ns is 5 σ: the truncation takes off 0.01 % of the variance.
    assert centre == pytest.approx(7.3, abs=1e-3)
    assert width == pytest.approx(4.0, rel=1e-3)


def test_reconstruction_of_too_few_events() -> None:
    run = view(events=events_of(np.ones(5)), provenance=Provenance(rec_method="centroid"))
    rec = run_analysis("reconstruction", run)
    assert rec.variables == {}
    assert set(rec.data["not_measured"]) == {"convergence", "residual_core_width_ns", "vertices"}


def test_processing_counts_what_it_is_given() -> None:
    received = dt.datetime(2026, 11, 3, 9, 0, 0)
    files = (
        FileInfo(seq=0, uri="a/0.root", size=1_000_000, n_events=800, state="done"),
        FileInfo(seq=1, uri="a/1.root", size=2_000_000, n_events=800, state="failed"),
        FileInfo(seq=2, uri="a/2.root", size=None, n_events=None, state="missing"),
        FileInfo(seq=3, uri="a/3.root", size=500_000, n_events=400, state="done"),
    )
    run = view(
        files=files,
        processing=ProcessingInfo(
            run_end_received_at=received,
            data_complete_at=received + dt.timedelta(seconds=95.5),
            file_jobs={"DONE": 2, "FAILED": 1, "TOCHECK": 1},
        ),
        provenance=Provenance(events_read=1200, events_used=600, sampling_fraction=0.5),
    )
    done = run_analysis("processing", run)
    assert {k: value(done, k) for k in done.variables} == {
        "events": 1200,
        "events_used": 600,
        "files": 4,
        "bytes": 3_500_000,
        "failed_files": 2,
        "data_complete_latency_s": 95.5,
    }
    assert done.data["file_jobs"] == {"DONE": 2, "FAILED": 1, "TOCHECK": 1}
    # Before the merge: no latency yet, the rest as known.
    pending = run_analysis("processing", view(files=files[:1]))
    assert "data_complete_latency_s" not in pending.variables
    assert value(pending, "events") == 800 and value(pending, "bytes") == 1_000_000
    check_result("processing", pending)
