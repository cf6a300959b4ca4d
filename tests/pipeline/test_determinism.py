"""Processing a file gives identical histograms and PMT sums with 1 process, 2 processes and a Dask
LocalCluster (joblib's Dask backend), and for the same events whatever the chunking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import assert_identical, make_settings, simulate

from pipeline.stages import calib, processing
from pipeline.stages.reading import RawFile


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> processing.FileTask:
    tmp = tmp_path_factory.mktemp("determinism")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")
    result = simulate(settings, 860, n_files=1, events=1_200, notify=False, energy_mev=1.5)
    with np.load(settings.data_dir / "truth" / "860" / "860.0.truth.npz") as z:
        constants = calib.CalibConstants(1, z["gain"], z["offset_ns"])
    return processing.FileTask(
        file=RawFile(path=result.files[0].path, run_id=860, seq=0),
        calibration=constants,
        rec_method="tlh",
    )


def test_one_two_processes_and_dask_identical(
    task: processing.FileTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client, LocalCluster

    monkeypatch.setattr(processing, "RANGE_EVENTS", 250)  # 5 ranges of the 1,200 events
    one = processing.process_file(task)
    assert one.n_events == 1_200 and one.histograms["rec"]["time_residual"].sum(flow=True) > 0
    # every reconstructed physics event is in the event table, as in the energy histogram
    assert len(one.events["energy_mev"]) == one.histograms["rec"]["energy"].sum(flow=True) > 0
    assert np.all(np.diff(one.events["time_s"]) >= 0)
    two = processing.process_file(replace(task, n_jobs=2))
    assert_identical(one, two)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        on_dask = processing.process_file(replace(task, n_jobs=2, backend="dask"))
    assert_identical(one, on_dask)


def test_counts_do_not_depend_on_the_chunking(
    task: processing.FileTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting histograms (not the float sums, whose rounding depends on the order) are the same
    with other chunk boundaries."""
    monkeypatch.setattr(processing, "RANGE_EVENTS", 250)
    a = processing.process_file(task)
    monkeypatch.setattr(processing, "RANGE_EVENTS", 1_000)
    b = processing.process_file(task)
    for stage in ("calib", "rec"):
        for name in ("nhits", "charge_pe", "occupancy", "energy", "trigger_interval"):
            if name in a.histograms[stage]:
                assert np.array_equal(
                    a.histograms[stage][name].view(flow=True),
                    b.histograms[stage][name].view(flow=True),
                ), name
    assert np.array_equal(a.pmt_sums["hit_count"], b.pmt_sums["hit_count"])
