"""The centroid reconstruction against the simulator's truth, and the Rec histograms."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_settings, simulate

from dqm import detector
from pipeline.stages import calib, processing, reco
from pipeline.stages.reading import RawFile, iterate_events


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("reco")
    return make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")


def reconstructed(settings, run_id: int, vertex: tuple[float, float, float], energy: float):
    result = simulate(
        settings,
        run_id,
        n_files=1,
        events=300,
        notify=False,
        energy_mev=energy,
        vertex_mm=vertex,
        random_trigger_fraction=0.0,
    )
    with np.load(settings.data_dir / "truth" / str(run_id) / f"{run_id}.0.truth.npz") as z:
        gain = z["gain"]
    vertices, energies = [], []
    for chunk in iterate_events(result.files[0].path, run_id=run_id, seq=0):
        v, e = reco.reconstruct_centroid(chunk.pmt_id, chunk.adc / gain[chunk.pmt_id], chunk.nhits)
        vertices.append(v)
        energies.append(e)
    return result, np.concatenate(vertices), np.concatenate(energies)


def test_energy_scale_and_resolution_at_the_centre(settings) -> None:
    _, vertices, energies = reconstructed(settings, 830, (0.0, 0.0, 0.0), 1.0)
    assert abs(energies.mean() - 1.0) < 0.01
    photostatistics = 1 / np.sqrt(detector.LIGHT_YIELD_PE_PER_MEV)
    assert energies.std() < 1.35 * photostatistics  # dark noise and charge resolution on top
    assert np.abs(vertices.mean(axis=0)).max() < 100  # mm
    assert vertices.std(axis=0).max() < 450


@pytest.mark.parametrize(
    ("vertex", "energy"), [((0.0, 0.0, 10_000.0), 1.0), ((5_000.0, 8_000.0, -6_000.0), 2.0)]
)
def test_off_centre_vertices_and_non_uniformity(settings, vertex, energy) -> None:
    _, vertices, energies = reconstructed(settings, 831 + int(energy), vertex, energy)
    bias = vertices.mean(axis=0) - np.array(vertex)
    assert np.abs(bias).max() < 400  # the centroid's radial correction; tlh will do better
    assert abs(energies.mean() / energy - 1) < 0.02  # light-yield non-uniformity corrected


def test_process_file_fills_the_rec_histograms(settings) -> None:
    result, _, _ = reconstructed(settings, 835, (0.0, 0.0, 0.0), 1.0)
    f = result.files[0]
    out = processing.process_file(
        processing.FileTask(
            file=RawFile(path=f.path, run_id=835, seq=0),
            calibration=calib.CalibConstants.nominal(),
        )
    )
    rec = out.histograms[reco.STAGE]
    assert set(rec) == set(reco.TITLES)
    assert rec["energy"].sum(flow=True) == 300
    assert (
        rec["trigger_rate"].sum(flow=True) == 300 and rec["trigger_interval"].sum(flow=True) == 299
    )
    energy = rec["energy"]
    mean = (energy.values() * energy.axes[0].centers).sum() / energy.values().sum()
    assert abs(mean - 1.0) < 0.03  # nominal gains: within the gain spread's average
