"""Physics validity of the reconstruction against the simulator's truth (small samples; the full
figures come from bench/pipeline.py): the tlh vertex fit, the energy scale, resolution and
non-uniformity, with the centroid's figures alongside for comparison."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_settings, simulate

from dqm import detector
from dqm.pmtstats import PMT_ARRAYS
from pipeline.stages import calib, reco, tlh
from pipeline.stages.reading import iterate_events


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("tlh")
    return make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")


def reconstruct(settings, run_id: int, events: int, **config):
    """Per event: true vertex, tlh vertex, centroid vertex, tlh energy, centroid energy."""
    result = simulate(
        settings,
        run_id,
        n_files=1,
        events=events,
        notify=False,
        energy_mev=1.0,
        random_trigger_fraction=0.0,
        **config,
    )
    with np.load(settings.data_dir / "truth" / str(run_id) / f"{run_id}.0.truth.npz") as z:
        constants = calib.CalibConstants(1, z["gain"], z["offset_ns"])
        true_vertex = z["vertex_mm"]
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("tlh", "centroid", "e_tlh", "e_centroid")}
    residuals = np.zeros(reco.TIME_RESIDUAL_BINS + 2)
    lo, hi = reco.TIME_RESIDUAL_RANGE_NS
    for chunk in iterate_events(result.files[0].path, run_id=run_id, seq=0):
        sums = {name: np.zeros(detector.N_PMTS) for name in PMT_ARRAYS}
        c = calib.calibrate_chunk(chunk, constants, calib.calib_histograms(), sums)
        seed = reco.centroid_vertices(c.moment, c.signal_pe, reco.SIGNAL_WINDOW_NS)
        vertex, _, not_converged = tlh.fit_vertices(
            chunk.pmt_id,
            c.pe,
            c.time,
            chunk.nhits,
            seed,
            residual_counts=residuals,
            residual_binning=(lo, reco.TIME_RESIDUAL_BINS / (hi - lo)),
        )
        assert not_converged == 0
        out["tlh"].append(vertex)
        out["centroid"].append(seed)
        for name, v in (("e_tlh", vertex), ("e_centroid", seed)):
            out[name].append(
                reco.energy_from_charge(c.signal_pe, v, window_ns=reco.SIGNAL_WINDOW_NS)
            )
    return true_vertex, {k: np.concatenate(v) for k, v in out.items()}, residuals


def test_tlh_vertex_resolution_and_radial_bias_at_1_mev(settings) -> None:
    for k, position in enumerate([(0.0, 0.0, 8_000.0), (9_000.0, 9_000.0, -9_500.0)]):
        truth, rec, residuals = reconstruct(settings, 840 + k, 300, vertex_mm=position)
        error = rec["tlh"] - truth
        resolution = np.sqrt((error**2).sum(axis=1).mean())  # 3-D, mm
        radial_bias = np.mean(np.linalg.norm(rec["tlh"], axis=1) - np.linalg.norm(truth, axis=1))
        centroid_resolution = np.sqrt(((rec["centroid"] - truth) ** 2).sum(axis=1).mean())
        print(
            f"{position}: tlh {resolution:.0f} mm, bias {radial_bias:.1f} mm; centroid {centroid_resolution:.0f} mm"
        )
        assert resolution <= 120.0
        assert abs(radial_bias) <= 30.0
        assert centroid_resolution > 2 * resolution  # the fit does better than its seed
        # the residuals after the fit peak within a few ns of zero, dark noise flat around them
        centres = np.linspace(*reco.TIME_RESIDUAL_RANGE_NS, reco.TIME_RESIDUAL_BINS + 1)[:-1] + 0.5
        assert abs(centres[np.argmax(residuals[1:-1])]) < 5.0


def test_energy_resolution_at_the_centre_within_125_percent_of_photostatistics(settings) -> None:
    _, rec, _ = reconstruct(settings, 843, 400, vertex_mm=(0.0, 0.0, 0.0))
    energy = rec["e_tlh"]
    photostatistics = 1 / np.sqrt(detector.LIGHT_YIELD_PE_PER_MEV * 1.0)
    print(f"sigma/E {energy.std() / energy.mean():.4f}, limit {photostatistics:.4f}")
    assert abs(energy.mean() - 1.0) < 0.005
    assert energy.std() / energy.mean() <= 1.25 * photostatistics


def test_energy_non_uniformity_after_correction_within_one_percent(settings) -> None:
    """Mean energy in 20 cells of the volume inside 16 m (5 in R³ × 4 in cos θ)."""
    truth, rec, _ = reconstruct(settings, 844, 4_000)
    radius = np.linalg.norm(truth, axis=1)
    inside = radius < 16_000
    cell_r = np.minimum((radius / 16_000) ** 3 * 5, 4.999).astype(int)
    cell_c = np.minimum((truth[:, 2] / np.maximum(radius, 1) + 1) * 2, 3.999).astype(int)
    for name in ("e_tlh", "e_centroid"):
        energy = rec[name]
        means = np.array(
            [
                energy[inside & (cell_r == i) & (cell_c == j)].mean()
                for i in range(5)
                for j in range(4)
            ]
        )
        deviation = np.abs(means / energy[inside].mean() - 1).max()
        print(f"{name}: largest deviation of a cell {deviation:.4f}")
        if name == "e_tlh":
            assert deviation <= 0.01
