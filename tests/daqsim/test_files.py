"""Raw files: the documented format, run metadata, messages, bad input, nothing half-written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import uproot
from click.testing import CliRunner
from simhelpers import read_events

from daqsim import SimulationConfig, SimulationResult, simulate_run
from daqsim import run as run_module
from dqm import rawformat
from dqm.cli import cli
from dqm.config import Settings
from dqm.errors import InvalidValueError


def test_files_have_the_documented_branches(simulate: Callable[..., SimulationResult]) -> None:
    result = simulate(run_id=511, n_files=2, events_per_file=250, chunk_events=100)
    assert [f.seq for f in result.files] == [0, 1]
    previous_time = -1
    for sim_file in result.files:
        assert sim_file.path.name == f"511.{sim_file.seq}.root"
        assert sim_file.checksum == rawformat.adler32_file(sim_file.path)
        assert sim_file.size == sim_file.path.stat().st_size
        with uproot.open(sim_file.path) as f:
            tree = f[rawformat.EVENTS_TREE]
            assert tree.num_entries == 250
            types = {branch.name: branch.interpretation for branch in tree.branches}
            for name, dtype in rawformat.EVENT_BRANCHES.items():
                assert types[name].to_dtype == dtype, name
            for name, dtype in rawformat.HIT_BRANCHES.items():
                assert types[name].content.to_dtype == dtype, name
            assert rawformat.HIT_COUNTER in types
            info = json.loads(str(f[rawformat.RUN_INFO_KEY]))
            assert (
                info["run_id"] == 511
                and info["seq"] == sim_file.seq
                and info["run_type"] == "physics"
            )
            assert info["start_time"] == "2026-11-01T08:00:00"
            assert "energy" not in str(f.keys())  # no truth in raw files
        events = read_events(sim_file.path)
        np.testing.assert_array_equal(events["event_id"], np.arange(250) + 250 * sim_file.seq)
        times = events["trigger_time"]
        assert times[0] > previous_time and np.all(np.diff(times) > 0)
        previous_time = times[-1]
        np.testing.assert_array_equal(events["nhits"], [len(h) for h in events["hits_pmt_id"]])
        pmt = np.concatenate(events["hits_pmt_id"])
        tdc = np.concatenate(events["hits_tdc"])
        assert pmt.min() >= 0 and pmt.max() < 17_612
        assert tdc.min() >= 0 and tdc.max() < 1000
        assert set(np.unique(events["trigger_type"])) <= {
            rawformat.TRIGGER_GLOBAL,
            rawformat.TRIGGER_RANDOM,
        }
    # Mean trigger rate 1 kHz: 500 events in about half a second.
    assert 0.4e9 < previous_time < 0.6e9
    manifest = json.loads(result.manifest.read_text())
    assert manifest["run_id"] == 511 and len(manifest["files"]) == 2


def test_same_seed_same_events_whatever_the_workers(
    simulate: Callable[..., SimulationResult],
) -> None:
    a = simulate(run_id=512, events_per_file=300, chunk_events=100, seed=7)
    first = read_events(a.files[0].path)
    b = simulate(run_id=512, events_per_file=300, chunk_events=100, seed=7, n_jobs=2)
    second = read_events(b.files[0].path)
    for key in first:
        np.testing.assert_array_equal(
            np.concatenate(first[key]) if first[key].dtype == object else first[key],
            np.concatenate(second[key]) if second[key].dtype == object else second[key],
        )
    c = simulate(run_id=512, events_per_file=300, chunk_events=100, seed=8)
    assert not np.array_equal(read_events(c.files[0].path)["nhits"], first["nhits"])


def test_run_types(simulate: Callable[..., SimulationResult], sim_settings: Settings) -> None:
    random = simulate(run_id=513, run_type="random", events_per_file=200, trigger_rate_hz=50)
    events = read_events(random.files[0].path)
    assert set(events["trigger_type"]) == {rawformat.TRIGGER_RANDOM}
    np.testing.assert_allclose(np.diff(events["trigger_time"]), 2e7, atol=1)  # periodic at 50 Hz
    # Dark noise only: ~690 hits in 1 us from 17,612 PMTs at 15-49 kHz.
    assert 600 < events["nhits"].mean() < 780

    source = simulate(
        run_id=514, run_type="calibration", source="Ge68", source_z_mm=-8000, events_per_file=200
    )
    info = json.loads(str(uproot.open(source.files[0].path)[rawformat.RUN_INFO_KEY]))
    assert info["source"] == "Ge68" and info["source_z_mm"] == -8000


def test_corrupt_and_missing_files(faulty_run: SimulationResult) -> None:
    corrupt = faulty_run.files[3]
    assert corrupt.corrupt and corrupt.path.exists()
    with pytest.raises(Exception), uproot.open(corrupt.path) as f:  # noqa: B017 - any failure will do
        f["events"].arrays()
    missing = faulty_run.files[4]
    assert not missing.delivered and not missing.path.exists()
    assert missing.size > 0 and len(missing.checksum) == 8  # announced as data transfer saw it


def test_notify_publishes_the_messages(sim_settings: Settings, tmp_path: Path) -> None:
    from dqm import messages

    sent: list[messages.Message] = []
    config = SimulationConfig(
        run_id=515,
        n_files=2,
        events_per_file=100,
        n_jobs=1,
        faults=(__import__("daqsim", fromlist=["x"]).parse_fault("missing:seq=1"),),
    )
    result = simulate_run(
        config,
        sim_settings,
        overwrite=True,
        notify=True,
        progress=False,
        publish=lambda *m: sent.extend(m),
    )
    assert [m.type for m in sent] == ["run_start", "file_ready", "file_ready", "run_end"]
    assert [m.fields.get("seq") for m in sent[1:3]] == [0, 1]
    assert sent[1].fields["checksum"] == rawformat.adler32_file(result.files[0].path)
    assert sent[2].fields["uri"].endswith("515.1.root") and not Path(sent[2].fields["uri"]).exists()
    assert sent[3].fields["n_events"] == 200 and sent[3].fields["n_files"] == 2
    assert len({m.message_id for m in sent}) == 4
    for message in sent:
        assert messages.parse(message.to_json()) == message


def test_nothing_half_written_when_a_run_fails(
    sim_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = run_module.generate_chunk

    def failing(task):  # the third chunk fails, in the middle of the second file
        if task.seq == 1 and task.chunk == 1:
            raise RuntimeError("worker died")
        return real(task)

    monkeypatch.setattr(run_module, "generate_chunk", failing)
    config = SimulationConfig(
        run_id=516, n_files=2, events_per_file=200, chunk_events=100, n_jobs=1
    )
    with pytest.raises(RuntimeError, match="worker died"):
        simulate_run(config, sim_settings, overwrite=True, progress=False)
    leftovers = [p.name for p in sim_settings.data_dir.rglob("516*") if p.is_file()]
    assert not [name for name in leftovers if name.endswith(".part") or ".part." in name]
    assert "516.0.root" in leftovers and "516.1.root" not in leftovers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "0"], "events per file must be at least 1, got 0"),
        (["--events", "-5"], "events per file must be at least 1, got -5"),
        (["--files", "0"], "n files must be at least 1"),
        (["--type", "cosmic"], "unknown run type 'cosmic'"),
        (["--fault", "burnt"], "unknown fault 'burnt'"),
        (["--fault", "dead:m=3"], "unknown parameter 'm=3'"),
        (["--fault", "hot:occupancy=2"], "occupancy=2.0 must be in (0, 1]"),
        (["--fault", "gain_drift:phi=30..0"], "must be an increasing range"),
        (["--fault", "dead:ids=1;x"], "is not a list of PMT ids"),
        (
            ["--type", "calibration", "--source", "Cs137", "--source-z", "18000"],
            "outside the detector",
        ),
        (["--type", "calibration", "--source", "Sr90"], "calibration source 'Sr90' is unknown"),
        (["--vertex", "1,2"], "is not three numbers"),
        (["--vertex", "0,0,18000"], "outside the scintillator"),
        (["--rate", "0"], "trigger rate 0"),
        (["--start", "yesterday"], "start time 'yesterday' is not a date"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "9", "-q", *args], env={"DQM_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "raw" / "9").exists() or not any((tmp_path / "raw" / "9").iterdir())


def test_existing_run_needs_overwrite(sim_settings: Settings) -> None:
    config = SimulationConfig(run_id=517, events_per_file=50, n_jobs=1)
    simulate_run(config, sim_settings, progress=False)
    with pytest.raises(InvalidValueError, match="run 517 exists already .* add --overwrite"):
        simulate_run(config, sim_settings, progress=False)
    simulate_run(config, sim_settings, progress=False, overwrite=True)


def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(cli, ["simulate", "9", "-q"], env={"DQM_DATA_DIR": str(blocker)})
    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot write to {blocker}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gain_drift:phi=0:30", r"phi='0:30' is not a range such as 0\.\.30"),
        ("time_shift:theta=a..b", r"theta='a..b' is not a range"),
        ("dead:n=many", "n='many' is not an integer"),
        ("smoke", "unknown fault 'smoke'"),
    ],
)
def test_a_bad_fault_is_one_sentence(text: str, message: str) -> None:
    from daqsim import parse_fault

    with pytest.raises(InvalidValueError, match=message):
        parse_fault(text)
