"""The PMT mask against the simulator's truth: a run with 5 % of its PMTs dead.

Without a mask the energy scale is low by the dead PMTs' share of the light; with the mask that
lists them it is within 0.5 % of the truth, and the vertex resolution is no worse than without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_settings, simulate

from dqm import detector
from pipeline.stages import calib, processing, reco
from pipeline.stages.reading import RawFile

#: 5 % of the PMTs.
N_DEAD = round(0.05 * detector.N_PMTS)
EVENTS = 400
ENERGY_MEV = 2.0


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("masks")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")
    runs = {}
    for run_id, faults in ((950, ()), (951, (f"dead:n={N_DEAD}",))):
        result = simulate(
            settings,
            run_id,
            n_files=1,
            events=EVENTS,
            notify=False,
            energy_mev=ENERGY_MEV,
            random_trigger_fraction=0.0,
            faults=faults,
        )
        truth = settings.data_dir / "truth" / str(run_id)
        with np.load(truth / f"{run_id}.0.truth.npz") as z:
            constants = calib.CalibConstants(1, z["gain"], z["offset_ns"])
            true_vertex, true_energy = z["vertex_mm"], z["energy_mev"]
        manifest = json.loads((truth / f"{run_id}.faults.json").read_text())
        dead = np.asarray(manifest["pmts"].get("dead", []), dtype=np.int64)
        runs[run_id] = (result.files[0].path, constants, true_vertex, true_energy, dead)
    return runs


def reconstructed(run, masked):
    path, constants, true_vertex, true_energy, _ = run
    out = processing.process_file(
        processing.FileTask(
            file=RawFile(path=path, run_id=0, seq=0),
            calibration=constants,
            masked_pmts=masked,
            mask_version=1 if masked is not None else 0,
        )
    )
    events = out.events
    vertex = np.stack([events["x_mm"], events["y_mm"], events["z_mm"]], axis=1).astype(float)
    assert len(vertex) == len(true_vertex)  # every event reconstructed, in the truth's order
    energy_scale = events["energy_mev"].mean() / true_energy.mean()
    resolution = np.sqrt(((vertex - true_vertex) ** 2).sum(axis=1)).mean()
    return energy_scale, resolution, out


def test_a_mask_restores_the_energy_scale_of_a_run_with_dead_pmts(dead_run) -> None:
    healthy, faulty = dead_run[950], dead_run[951]
    dead = faulty[4]
    assert len(dead) == N_DEAD
    # the dead PMTs' share of the light of the run's events, from the optical model
    vertices = faulty[2]
    share = (reco.masked_light(vertices, dead) / reco.relative_light(vertices)).mean()
    assert 0.04 < share < 0.06

    scale_unmasked, resolution_unmasked, _ = reconstructed(faulty, None)
    scale_masked, resolution_masked, out = reconstructed(faulty, dead)
    scale_healthy, resolution_healthy, _ = reconstructed(healthy, None)

    # statistical error of a scale: about 1.8 % / sqrt(400) = 0.09 %
    assert abs((1 - scale_unmasked) - share) < 0.01
    assert abs(scale_masked - 1) < 0.005
    assert abs(scale_healthy - 1) < 0.005
    # the mask leaves the dead PMTs' (absent) hits out: the fit is no worse; against the healthy
    # detector, 5 % fewer hits cost about 2.5 % of resolution
    assert resolution_masked < 1.03 * resolution_unmasked
    assert resolution_masked < 1.15 * resolution_healthy
    assert out.mask_version == 1


def test_masked_pmts_are_still_counted_in_the_pmt_statistics(dead_run) -> None:
    # a healthy run, with some PMTs masked anyway
    masked = np.arange(0, detector.N_PMTS, 40)
    _, _, with_mask = reconstructed(dead_run[950], masked)
    _, _, without = reconstructed(dead_run[950], None)
    # the calibration's per-PMT sums do not depend on the mask
    for name in ("hit_count", "fired_events", "charge_sum", "time_sum", "dark_count"):
        np.testing.assert_array_equal(with_mask.pmt_sums[name], without.pmt_sums[name])
    assert with_mask.pmt_sums["hit_count"][masked].sum() > 0

    # the signal hits of central events are chosen by the reconstruction's PMTs (a masked hot PMT
    # does not start the signal window): the masked PMTs keep theirs, and the gain they measure
    # (charge per signal hit) does not move
    def gain(sums):
        return sums["signal_charge_sum"].sum() / sums["signal_hits"].sum()

    assert with_mask.pmt_sums["signal_hits"][masked].sum() > 0
    assert abs(gain(with_mask.pmt_sums) / gain(without.pmt_sums) - 1) < 0.005
    # ... and the energy of a healthy detector with PMTs masked stays right: their expected light
    # is left out with their charge
    energy = with_mask.events["energy_mev"].mean() / ENERGY_MEV
    assert abs(energy - 1) < 0.01
