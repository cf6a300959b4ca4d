"""The calibration stage against the simulator's truth: charges in PE, times, per-PMT statistics,
event sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings, simulate

from dqm import detector
from pipeline.stages import calib, processing
from pipeline.stages.reading import RawFile


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("calib")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")
    centre = simulate(
        settings,
        801,
        n_files=1,
        events=400,
        notify=False,
        energy_mev=1.0,
        vertex_mm=(0.0, 0.0, 0.0),
        random_trigger_fraction=0.0,
    )
    faulty = simulate(
        settings,
        802,
        n_files=1,
        events=400,
        notify=False,
        faults=("dead:n=20", "hot:n=3,occupancy=0.9", "noisy:n=5,rate_hz=2e6"),
    )
    return settings, centre, faulty


def truth(settings, run_id: int) -> dict[str, np.ndarray]:
    with np.load(settings.data_dir / "truth" / str(run_id) / f"{run_id}.0.truth.npz") as z:
        return {k: z[k] for k in z.files}


def process(
    result, constants: calib.CalibConstants, fraction: float = 1.0
) -> processing.FileResult:
    f = result.files[0]
    return processing.process_file(
        processing.FileTask(
            file=RawFile(
                path=f.path, run_id=result.run_id, seq=0, size=f.size, checksum=f.checksum
            ),
            calibration=constants,
            sampling_fraction=fraction,
        )
    )


def test_charges_in_pe_with_the_true_constants(runs) -> None:
    settings, centre, _ = runs
    true = truth(settings, 801)
    constants = calib.CalibConstants(1, true["gain"], true["offset_ns"])
    result = process(centre, constants)
    h = result.histograms[calib.STAGE]
    dark_pe = (true["dark_rate_hz"] * 1e-6).sum()
    assert (
        abs(_mean(h["total_pe"]) - dark_pe - detector.LIGHT_YIELD_PE_PER_MEV)
        < 0.02 * detector.LIGHT_YIELD_PE_PER_MEV
    )
    # Single photo-electrons peak at 1 PE.
    charge = h["charge_pe"]
    peak = charge.axes[0].centers[np.argmax(charge.values())]
    assert 0.9 < peak < 1.1
    # Calibrated signal times bunch just after the trigger position plus the time of flight.
    expected = (
        detector.TRIGGER_POSITION_NS + detector.PMT_RADIUS_MM / detector.LS_GROUP_VELOCITY_MM_PER_NS
    )
    times = h["hit_time"]
    peak_time = times.axes[0].centers[np.argmax(times.values())]
    assert expected < peak_time < expected + 20  # plus trigger jitter (<16 ns), emission and TTS
    assert result.n_events == result.n_read == 400


def _mean(histogram) -> float:
    return float((histogram.values() * histogram.axes[0].centers).sum() / histogram.values().sum())


def test_nominal_constants_are_close_but_not_exact(runs) -> None:
    settings, centre, _ = runs
    true = truth(settings, 801)
    nominal = process(centre, calib.CalibConstants.nominal())
    exact = process(centre, calib.CalibConstants(1, true["gain"], true["offset_ns"]))
    # Gains spread by 10% around the nominal: the totals agree on average, not PMT by PMT.
    assert (
        abs(
            _mean(nominal.histograms["calib"]["total_pe"])
            / _mean(exact.histograms["calib"]["total_pe"])
            - 1
        )
        < 0.02
    )
    assert not np.allclose(nominal.pmt_sums["charge_sum"], exact.pmt_sums["charge_sum"])


def test_pmt_statistics_find_dead_hot_and_noisy_pmts(runs) -> None:
    _, _, faulty = runs
    manifest = json.loads(faulty.manifest.read_text())
    result = process(faulty, calib.CalibConstants.nominal())
    sums, n = result.pmt_sums, result.n_events
    assert sums["hit_count"][manifest["pmts"]["dead"]].sum() == 0
    hit_rate = sums["fired_events"] / n
    assert np.all(hit_rate[manifest["pmts"]["hot"]] > 0.85)
    dark_rate_hz = sums["dark_count"] / (result.livetime_ns * 1e-9)
    assert np.all(dark_rate_hz[manifest["pmts"]["noisy"]] > 1.2e6)
    normal = np.setdiff1d(
        np.arange(detector.N_PMTS), np.concatenate(list(manifest["pmts"].values()))
    )
    # Mean dark rate of the normal PMTs: ~49 kHz NNVT and ~15 kHz Hamamatsu, 5,000 of 17,612.
    assert 30e3 < dark_rate_hz[normal].mean() < 45e3
    assert sums["hit_count"].sum() == result.histograms["calib"]["occupancy"].sum()
    assert result.histograms["calib"]["dark_rate"].sum(flow=True) == detector.N_PMTS


def test_sampling_is_deterministic(runs) -> None:
    """The same events sampled twice (that they do not depend on the chunking is read from raw files
    of known contents in test_reading.py)."""
    _, centre, _ = runs
    constants = calib.CalibConstants.nominal()
    a = process(centre, constants, fraction=0.3)
    b = process(centre, constants, fraction=0.3)
    assert a.n_read == 400 and 90 <= a.n_events <= 150
    assert a.histograms["calib"]["nhits"] == b.histograms["calib"]["nhits"]


def test_merge_sums_files_and_recomputes_rates(runs) -> None:
    _, centre, faulty = runs
    parts = []
    for result in (centre, faulty):
        r = process(result, calib.CalibConstants.nominal())
        parts.append(calib.Sums(r.histograms, r.pmt_sums, r.n_events, r.livetime_ns))
    merged = calib.merge_results(parts)
    assert merged.n_events == 800
    assert (
        merged.histograms["calib"]["nhits"]
        == parts[0].histograms["calib"]["nhits"] + parts[1].histograms["calib"]["nhits"]
    )
    # Rates are recomputed from the summed statistics, not summed.
    assert merged.histograms["calib"]["dark_rate"].sum(flow=True) == detector.N_PMTS
    np.testing.assert_array_equal(
        merged.pmt_sums["dark_count"],
        parts[0].pmt_sums["dark_count"] + parts[1].pmt_sums["dark_count"],
    )
    assert Path(centre.files[0].path).exists()
