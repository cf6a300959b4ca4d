"""dqm calibrate: gains and time offsets from a laser run, against the simulator's truth; the job
server then uses them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_settings, run_server, session, simulate

from dqm.cli import cli
from dqm.db import queries
from dqm.histcodec import array_from_bytes
from pipeline.stages import laser
from pipeline.stages.reading import RawFile

N_FLASHES = 3000


@pytest.fixture(scope="module")
def laser_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("laser")
    url = f"sqlite:///{tmp / 'dqm.sqlite'}"
    from dqm.db import migrate

    migrate.upgrade(url)
    settings = make_settings(tmp, url)
    result = simulate(
        settings,
        820,
        n_files=2,
        events=N_FLASHES // 2,
        run_type="laser",
        laser_pe=1.0,
        faults=("dead:n=15",),
    )
    run_server(settings)
    with np.load(settings.data_dir / "truth" / "820" / "820.0.truth.npz") as z:
        truth = {k: z[k] for k in z.files}
    return settings, result, truth


@pytest.mark.slow
def test_gains_and_offsets_match_the_truth(laser_run) -> None:
    _settings, result, truth = laser_run
    parts = [laser.laser_sums(RawFile(path=f.path, run_id=820, seq=f.seq)) for f in result.files]
    fitted = laser.fit(parts)
    dead = sorted(json.loads(result.manifest.read_text())["pmts"]["dead"])
    assert fitted.n_events == N_FLASHES
    assert sorted(fitted.dead) == dead  # dead PMTs are reported, not fitted
    live = fitted.status == laser.STATUS_GOOD
    relative = fitted.gain[live] / truth["gain"][live] - 1
    # ~1,900 laser hits per PMT: a statistical error of ~1.7% per PMT (it falls as 1/sqrt(flashes)), no bias.
    assert abs(relative.mean()) < 0.002
    assert relative.std() < 0.02
    assert np.abs(relative).max() < 0.08
    offsets = fitted.offset_ns[live] - (truth["offset_ns"][live] - truth["offset_ns"][live].mean())
    assert abs(offsets.mean()) < 1e-9
    assert offsets.std() < 0.25
    hamamatsu = truth["pde_rel"][live] < 1  # Hamamatsu PMTs: lower PDE and 1.2 ns TTS
    assert np.abs(offsets[hamamatsu]).max() < 0.5


@pytest.mark.slow
def test_dqm_calibrate_stores_a_version_the_job_server_uses(laser_run, tmp_path: Path) -> None:
    settings, _result, truth = laser_run
    env = {"DQM_DATA_DIR": str(settings.data_dir), "DQM_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    wrong = runner.invoke(cli, ["calibrate", "999"], env=env)
    assert wrong.exit_code == 2 and "run 999 does not exist" in wrong.output
    stored = runner.invoke(cli, ["calibrate", "820", "--jobs", "1"], env=env)
    assert stored.exit_code == 0, stored.output
    assert "calibration version 1 (valid from run 820) from 3000 flashes" in stored.output
    assert "15 dead (not fitted)" in stored.output
    with session(settings) as s:
        calibration = queries.calibration_for_run(s, run_id=821)
        assert calibration.version == 1 and calibration.source_run == 820
        gains = array_from_bytes(calibration.gains)
        good = array_from_bytes(calibration.pmt_status) == laser.STATUS_GOOD
        assert np.abs(gains[good] / truth["gain"][good] - 1).mean() < 0.015
    # A physics run after the laser run is processed with version 1.
    simulate(settings, 821, n_files=1, events=50)
    run_server(settings)
    with session(settings) as s:
        (row,) = queries.histogram_rows(s, run_id=821, names=["charge_pe"])
        assert row.provenance["calibration_version"] == 1
        assert queries.get_run(s, run_id=821).status.value == "All Completed"
    physics = runner.invoke(cli, ["calibrate", "821"], env=env)
    assert physics.exit_code == 2 and "is a physics run" in physics.output
