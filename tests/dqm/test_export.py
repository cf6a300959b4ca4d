"""dqm export: a run's histograms and PMT statistics in a ROOT file, read back with uproot and ROOT."""

from __future__ import annotations

import datetime as dt
import errno
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot
from click.testing import CliRunner
from services import services_required

from dqm import rootexport
from dqm.cli import cli
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import DQMError, InvalidValueError, NotFoundError
from dqm.pmtstats import DERIVED, PMT_ARRAYS

RUN = 10004
N_PMTS = 17_612
N_EVENTS = 8_000
LIVETIME_NS = N_EVENTS * 200.0


def _histograms(rng: np.random.Generator) -> dict[tuple[str, str], tuple[hist.Hist, str]]:
    """Histograms of every kind the export handles, by (stage, name), with their titles."""
    charge = hist.Hist(hist.axis.Regular(200, 0, 20, name="charge", label="charge per hit [PE]"))
    charge.fill(rng.exponential(2.0, 50_000) - 0.5)  # some underflow and overflow
    occupancy = hist.Hist(
        hist.axis.Integer(0, N_PMTS, name="pmt", label="PMT id", underflow=False, overflow=False)
    )
    occupancy.view()[:] = rng.poisson(300, N_PMTS)
    nhits = hist.Hist(
        hist.axis.Variable([0, 100, 500, 1_000, 5_000, 25_000], name="nhits", underflow=False),
        storage=hist.storage.Int64(),
    )
    nhits.fill(rng.integers(0, 30_000, 5_000))
    pe = hist.Hist(
        hist.axis.Regular(30, 1, 10_000, transform=hist.axis.transform.log, name="pe", label="PE")
    )
    pe.fill(rng.uniform(0, 12_000, 3_000))
    energy = hist.Hist(
        hist.axis.Regular(300, 0, 15, name="energy", label="visible energy [MeV]"),
        storage=hist.storage.Weight(),
    )
    energy.fill(rng.normal(2.0, 1.5, 20_000), weight=rng.uniform(0.5, 1.5, 20_000))
    rho2_z = hist.Hist(
        hist.axis.Regular(100, 0, 376, name="rho2", label="ρ² [m²]"),
        hist.axis.Regular(100, -18, 18, name="z", label="z [m]"),
    )
    rho2_z.fill(rng.uniform(-10, 400, 40_000), rng.uniform(-20, 20, 40_000))
    trigger = hist.Hist(hist.axis.StrCategory(["physics", "laser"], name="type", label="trigger"))
    trigger.fill(["physics"] * 7 + ["laser"] * 2 + ["random"])  # "random" goes to the overflow
    return {
        ("calib", "charge_pe"): (charge, "Charge per hit"),
        ("calib", "occupancy"): (occupancy, "Hits per PMT"),
        ("calib", "nhits"): (nhits, "Hits per event"),
        ("calib", "total_pe"): (pe, "Total charge per event"),
        ("rec", "energy"): (energy, "Visible energy"),
        ("rec", "rho2_z"): (rho2_z, "ρ² versus z"),
        ("base", "trigger_type"): (trigger, "Trigger types"),
    }


def _pmt_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    hits = rng.poisson(400, N_PMTS).astype(float)
    hits[:40] = 0  # dead PMTs: derived quantities are 0, not NaN
    return {
        "hit_count": hits,
        "fired_events": np.minimum(hits, rng.poisson(350, N_PMTS)),
        "charge_sum": hits * rng.uniform(0.9, 1.1, N_PMTS),
        "time_sum": hits * rng.uniform(200, 300, N_PMTS),
        "dark_count": rng.poisson(80, N_PMTS).astype(float),
        "signal_hits": hits / 10,
        "signal_charge_sum": hits / 10 * 1.05,
        "signal_time_sum": hits / 10 * 250.0,
    }


@pytest.fixture
def stored_run(sqlite_database: str) -> dict:
    """Run 10004 with run-level histograms and PMT statistics, plus a file's own histogram and a
    run (10005) that has no histograms yet."""
    rng = np.random.default_rng(7)
    histograms = _histograms(rng)
    arrays = _pmt_arrays(rng)
    provenance = {"code_version": "0.1.0", "calibration_version": 2, "events_used": N_EVENTS}
    with transaction(sqlite_database) as s:
        queries.add_run(
            s, run_id=RUN, run_type="physics", start_time=dt.datetime(2026, 11, 20, 8, 0), n_files=1
        )
        queries.add_run(
            s, run_id=RUN + 1, run_type="laser", start_time=dt.datetime(2026, 11, 20, 9, 0)
        )
        file = queries.add_file(s, run_id=RUN, seq=0, uri="raw/10004/10004.0.root")
        for (stage, name), (h, title) in histograms.items():
            queries.save_histogram(
                s,
                run_id=RUN,
                file_id=None,
                stage=stage,
                name=name,
                histogram=h,
                title=title,
                provenance=provenance,
            )
        # A file's histogram is not the run's: never exported.
        queries.save_histogram(
            s,
            run_id=RUN,
            file_id=file.id,
            stage="calib",
            name="per_file_only",
            histogram=histograms[("calib", "charge_pe")][0],
        )
        queries.save_pmt_stats(
            s,
            run_id=RUN,
            file_id=None,
            n_events=N_EVENTS,
            livetime_ns=LIVETIME_NS,
            arrays=arrays,
            provenance=provenance,
        )
        entries = {(r.stage, r.name): r.entries for r in queries.histogram_rows(s, run_id=RUN)}
    return {
        "url": sqlite_database,
        "histograms": histograms,
        "arrays": arrays,
        "entries": entries,
        "provenance": provenance,
    }


@pytest.fixture
def exported(stored_run: dict, tmp_path: Path) -> tuple[dict, Path]:
    path = tmp_path / "run.root"
    with transaction(stored_run["url"]) as s:
        rootexport.export_run(s, RUN, path)
    return stored_run, path


def root_layout(h: hist.Hist, *, variances: bool = False) -> np.ndarray:
    """Contents (or variances) in ROOT's layout: under- and overflow on every axis, zero where
    hist has none."""
    view = h.variances(flow=True) if variances else h.values(flow=True)
    pads = [(0 if a.traits.underflow else 1, 0 if a.traits.overflow else 1) for a in h.axes]
    return np.pad(np.asarray(view, dtype=np.float64), pads)


def root_variances(h: hist.Hist) -> np.ndarray:
    return root_layout(h, variances=True)  # for unweighted storages hist gives the contents


def written(directory: Path) -> list[str]:
    """The ROOT files and partly written ones under ``directory``."""
    found = [*directory.glob("**/*.root"), *directory.glob("**/.*.part")]
    return sorted(str(p.relative_to(directory)) for p in found)


def root_edges(axis) -> np.ndarray:
    if isinstance(axis, hist.axis.StrCategory | hist.axis.IntCategory):
        return np.arange(len(axis) + 1, dtype=float)
    return np.asarray(axis.edges, dtype=float)


# --- uproot ------------------------------------------------------------------------------------


def test_every_histogram_reads_back_identical(exported: tuple[dict, Path]) -> None:
    stored, path = exported
    with uproot.open(path) as f:
        names = {key.split(";")[0] for key, cls in f.classnames().items() if cls.startswith("TH")}
        assert names == {f"{stage}/{name}" for stage, name in stored["histograms"]}
        for (stage, name), (h, title) in stored["histograms"].items():
            out = f[f"{stage}/{name}"]
            assert out.classname == ("TH1D" if h.ndim == 1 else "TH2D")
            assert out.title == title
            assert out.member("fEntries") == stored["entries"][stage, name]
            np.testing.assert_array_equal(out.values(flow=True), root_layout(h))
            np.testing.assert_array_equal(out.variances(flow=True), root_variances(h))
            assert (out.member("fSumw2") is not None and len(out.member("fSumw2")) > 0) == (
                h.storage_type is hist.storage.Weight
            )
            for i, axis in enumerate(h.axes):
                root_axis = out.axis(i)
                edges = root_edges(axis)
                # A regular axis is (bins, start, stop) in both; edges between may differ by rounding.
                assert root_axis.member("fNbins") == len(edges) - 1
                assert (root_axis.member("fXmin"), root_axis.member("fXmax")) == (
                    edges[0],
                    edges[-1],
                )
                np.testing.assert_allclose(root_axis.edges(), edges, rtol=1e-14, atol=1e-12)
                assert root_axis.member("fTitle") == axis.label
            if isinstance(h.axes[0], hist.axis.StrCategory):
                assert out.axis(0).labels() == list(h.axes[0])


def test_pmt_tree_and_run_info(exported: tuple[dict, Path]) -> None:
    stored, path = exported
    arrays = stored["arrays"]
    with uproot.open(path) as f:
        tree = f[rootexport.PMT_TREE]
        assert tree.num_entries == N_PMTS
        assert set(tree.keys()) == {"pmt_id", *PMT_ARRAYS, *DERIVED}
        got = tree.arrays(library="np")
        info = json.loads(str(f[rootexport.RUN_INFO]))
    np.testing.assert_array_equal(got["pmt_id"], np.arange(N_PMTS))
    assert got["pmt_id"].dtype == np.int32
    for name in PMT_ARRAYS:
        np.testing.assert_array_equal(got[name], arrays[name])
    hits = arrays["hit_count"]
    live = hits > 0
    np.testing.assert_allclose(got["hit_rate"], arrays["fired_events"] / N_EVENTS)
    np.testing.assert_allclose(got["mean_charge_pe"][live], arrays["charge_sum"][live] / hits[live])
    np.testing.assert_allclose(got["mean_time_ns"][live], arrays["time_sum"][live] / hits[live])
    assert not got["mean_charge_pe"][~live].any() and not got["mean_time_ns"][~live].any()
    np.testing.assert_allclose(got["dark_rate_hz"], arrays["dark_count"] / (LIVETIME_NS * 1e-9))

    assert info["run"]["run_id"] == RUN and info["run"]["run_type"] == "physics"
    assert info["run"]["start_time"] == "2026-11-20 08:00:00"
    assert info["pmt_stats"]["n_events"] == N_EVENTS
    assert info["pmt_stats"]["livetime_ns"] == LIVETIME_NS
    assert info["provenance"] == {stage: stored["provenance"] for stage in ("base", "calib", "rec")}
    assert info["histograms"]["rec"] == ["energy", "rho2_z"]
    assert info["export"]["dqm_version"]


def test_stage_filter(stored_run: dict, tmp_path: Path) -> None:
    path = tmp_path / "rec.root"
    with transaction(stored_run["url"]) as s:
        export = rootexport.export_run(s, RUN, path, stages=["rec"])
    assert sorted(h.path for h in export.histograms) == ["rec/energy", "rec/rho2_z"]
    with uproot.open(path) as f:
        assert "calib" not in f and "rec/energy" in f
    with transaction(stored_run["url"]) as s, pytest.raises(NotFoundError, match="stage 'tlh'"):
        rootexport.export_run(s, RUN, tmp_path / "x.root", stages=["tlh"])


def test_bad_input_is_refused_before_anything_is_written(stored_run: dict, tmp_path: Path) -> None:
    with transaction(stored_run["url"]) as s:
        with pytest.raises(NotFoundError, match="run 99 does not exist"):
            rootexport.export_run(s, 99, tmp_path / "a.root")
        with pytest.raises(NotFoundError, match="run 10005 has no histograms yet"):
            rootexport.export_run(s, RUN + 1, tmp_path / "b.root")
        with pytest.raises(InvalidValueError, match="does not exist"):
            rootexport.export_run(s, RUN, tmp_path / "nowhere" / "c.root")
        with pytest.raises(InvalidValueError, match="is a directory"):
            rootexport.export_run(s, RUN, tmp_path)
    assert written(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(
    stored_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.root"
    path.write_bytes(b"the previous export")
    calls = 0
    original = rootexport.histogram_to_root

    def fail_on_the_third(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(rootexport, "histogram_to_root", fail_on_the_third)
    with transaction(stored_run["url"]) as s:
        export = rootexport.collect_run(s, RUN)
    with pytest.raises(DQMError, match="No space left on device; nothing was written"):
        rootexport.write_root(export, path)
    assert path.read_bytes() == b"the previous export"
    assert written(tmp_path) == ["run.root"]


def test_histogram_to_root_three_axes_and_weighted_statistics() -> None:
    h = hist.Hist(
        hist.axis.Regular(2, 0, 2),
        hist.axis.Regular(3, 0, 3),
        hist.axis.Integer(0, 2, underflow=False, overflow=False),
        storage=hist.storage.Weight(),
    )
    h.fill([0.5, 1.5, 1.5], [0.5, 2.5, 9], [0, 1, 1], weight=[1.0, 2.0, 3.0])
    model = rootexport.histogram_to_root(h, title="3-D")
    assert model.classname == "TH3D"
    assert model.member("fTsumw") == 3.0  # the fill at y=9 is in the overflow
    assert model.member("fTsumw2") == 5.0
    assert model.member("fTsumwx") == 0.5 * 1 + 1.5 * 2
    assert model.member("fTsumwyz") == 1 * 0.5 * 0.5 + 2 * 2.5 * 1.5
    with pytest.raises(ValueError, match="4 axes"):
        rootexport.histogram_to_root(hist.Hist(*(hist.axis.Regular(1, 0, 1) for _ in range(4))))


# --- ROOT itself -------------------------------------------------------------------------------

#: Reads the exported file with ROOT and prints what it finds as JSON (in its own process: ROOT
#: warns on import that this build is an alpha, and keeps its own interpreter state).
ROOT_READER = r"""
import json, sys, warnings
warnings.filterwarnings("ignore", message=r"(?s).*alpha stage", category=UserWarning)
import ROOT

f = ROOT.TFile.Open(sys.argv[1])
out = {"histograms": {}}
for stage_key in f.GetListOfKeys():
    if stage_key.GetClassName() != "TDirectoryFile":
        continue
    for key in f.Get(stage_key.GetName()).GetListOfKeys():
        path = stage_key.GetName() + "/" + key.GetName()
        h = f.Get(path)
        axes = [h.GetXaxis()] + ([h.GetYaxis()] if h.GetDimension() == 2 else [])
        out["histograms"][path] = {
            "class": h.ClassName(),
            "title": h.GetTitle(),
            "entries": h.GetEntries(),
            "sumw2": h.GetSumw2N(),
            "mean": [h.GetMean(i + 1) for i in range(len(axes))],
            "contents": [h.GetBinContent(b) for b in range(h.GetNcells())],
            "errors": [h.GetBinError(b) for b in range(h.GetNcells())],
            "axes": [
                {
                    "title": a.GetTitle(),
                    "xmin": a.GetXmin(),
                    "xmax": a.GetXmax(),
                    "edges": [a.GetBinLowEdge(i) for i in range(1, a.GetNbins() + 2)],
                    "labels": [a.GetBinLabel(i) for i in range(1, a.GetNbins() + 1)]
                    if a.GetLabels()
                    else None,
                }
                for a in axes
            ],
        }
tree = f.Get("pmt_stats")
names = [b.GetName() for b in tree.GetListOfBranches()]
columns = {name: [] for name in names}
for entry in tree:
    for name in names:
        columns[name].append(getattr(entry, name))
out["tree"] = {"entries": tree.GetEntries(), "columns": columns}
out["run_info"] = f.Get("run_info").GetString().Data()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def root_python() -> str:
    """The Python that imports ROOT (this one); skipped, or failed with DQM_REQUIRE_SERVICES=1,
    when ROOT is not installed (``pip install root``)."""
    probe = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import ROOT; ROOT.TFile"],
        check=False,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).strip().splitlines()
        message = (
            f"ROOT is not importable ({lines[-1] if lines else 'no output'}); pip install root"
        )
        if services_required():
            pytest.fail(f"{message} (DQM_REQUIRE_SERVICES=1 requires it)", pytrace=False)
        pytest.skip(message)
    return sys.executable


def test_root_reads_the_export(exported: tuple[dict, Path], root_python: str) -> None:
    stored, path = exported
    done = subprocess.run(
        [root_python, "-c", ROOT_READER, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(got["histograms"]) == {f"{stage}/{name}" for stage, name in stored["histograms"]}
    for (stage, name), (h, title) in stored["histograms"].items():
        out = got["histograms"][f"{stage}/{name}"]
        assert out["class"] == ("TH1D" if h.ndim == 1 else "TH2D")
        assert out["title"] == title
        assert out["entries"] == stored["entries"][stage, name]
        weighted = h.storage_type is hist.storage.Weight
        assert out["sumw2"] == (np.prod([len(a) + 2 for a in h.axes]) if weighted else 0)
        # ROOT's global bin numbers run along x first.
        np.testing.assert_array_equal(out["contents"], root_layout(h).T.ravel())
        np.testing.assert_allclose(out["errors"], np.sqrt(root_variances(h).T.ravel()), rtol=1e-12)
        for axis, root_axis in zip(h.axes, out["axes"], strict=True):
            edges = root_edges(axis)
            assert root_axis["title"] == axis.label
            assert (root_axis["xmin"], root_axis["xmax"]) == (edges[0], edges[-1])
            np.testing.assert_allclose(root_axis["edges"], edges, rtol=1e-14, atol=1e-12)
            if isinstance(axis, hist.axis.StrCategory):
                assert root_axis["labels"] == list(axis)
        if h.ndim == 1 and not isinstance(h.axes[0], hist.axis.StrCategory):
            centres = (root_edges(h.axes[0])[:-1] + root_edges(h.axes[0])[1:]) / 2
            values = root_layout(h)[1:-1]
            assert out["mean"][0] == pytest.approx(np.average(centres, weights=values))

    tree = got["tree"]
    assert tree["entries"] == N_PMTS
    expected = rootexport.pmt_table(
        stored["arrays"], n_events=N_EVENTS, livetime_ns=LIVETIME_NS
    )  # checked against the stored sums in test_pmt_tree_and_run_info
    assert list(tree["columns"]) == list(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(tree["columns"][name], values)
    assert json.loads(got["run_info"])["run"]["run_id"] == RUN


def test_hadd_sums_two_exports(exported: tuple[dict, Path], root_python: str) -> None:
    stored, path = exported
    spec = importlib.util.find_spec("ROOT")
    assert spec is not None and spec.submodule_search_locations
    hadd = Path(next(iter(spec.submodule_search_locations))) / "bin" / "hadd"
    out = path.with_name("sum.root")
    done = subprocess.run(
        [str(hadd), "-f", str(out), str(path), str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with uproot.open(out) as f:
        for (stage, name), (h, _title) in stored["histograms"].items():
            np.testing.assert_array_equal(
                f[f"{stage}/{name}"].values(flow=True), 2 * root_layout(h)
            )
        assert f[rootexport.PMT_TREE].num_entries == 2 * N_PMTS


# --- command line ------------------------------------------------------------------------------


def dqm(url: str, *args: str):
    return CliRunner().invoke(
        cli, list(args), env={"DQM_DATABASE_URL": url}, catch_exceptions=False
    )


def test_cli_export(stored_run: dict, tmp_path: Path) -> None:
    path = tmp_path / "out.root"
    result = dqm(stored_run["url"], "export", str(RUN), "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"wrote 7 histograms (base, calib, rec) and 17,612 PMTs of run {RUN} to {path}.\n"
    )
    with uproot.open(path) as f:
        assert f["calib/charge_pe"].title == "Charge per hit"
    result = dqm(stored_run["url"], "export", str(RUN), "-o", str(path), "--stage", "rec")
    assert result.exit_code == 0 and "wrote 2 histograms (rec) and" in result.output


def test_cli_export_default_name(
    stored_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = dqm(stored_run["url"], "export", str(RUN))
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"run{RUN}.root").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["999"], 2, "error: run 999 does not exist."),
        ([str(RUN + 1)], 2, f"error: run {RUN + 1} has no histograms yet (status Data Taking)"),
        ([str(RUN), "--stage", "tlh"], 2, f"error: run {RUN} has no histograms of stage 'tlh'"),
        ([str(RUN), "-o", "{tmp}/missing/run.root"], 2, "the directory {tmp}/missing does not"),
        ([str(RUN), "-o", "{tmp}/a_file/run.root"], 2, "the directory {tmp}/a_file does not"),
        ([str(RUN), "-o", "{tmp}"], 2, "is a directory"),
    ],
)
def test_cli_export_bad_input(
    stored_run: dict, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    args = [a.format(tmp=tmp_path) for a in args]
    result = dqm(stored_run["url"], "export", *args)
    assert result.exit_code == code, result.output
    assert message.format(tmp=tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert written(tmp_path) == []


def test_cli_export_write_failure_is_one_line(
    stored_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_permission(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(uproot, "recreate", no_permission)
    result = dqm(stored_run["url"], "export", str(RUN), "-o", str(tmp_path / "run.root"))
    assert result.exit_code == 2
    assert result.output == f"error: cannot write {tmp_path / 'run.root'}: Permission denied.\n"

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uproot, "recreate", disk_full)
    result = dqm(stored_run["url"], "export", str(RUN), "-o", str(tmp_path / "run.root"))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "No space left" in result.output


def test_cli_export_run_without_pmt_statistics(stored_run: dict, tmp_path: Path) -> None:
    h = hist.Hist(hist.axis.Regular(10, 0, 10, name="energy"))
    h.fill([1, 2, 3])
    with transaction(stored_run["url"]) as s:
        queries.save_histogram(
            s, run_id=RUN + 1, file_id=None, stage="rec", name="energy", histogram=h
        )
    path = tmp_path / "laser.root"
    result = dqm(stored_run["url"], "export", str(RUN + 1), "-o", str(path))
    assert result.exit_code == 0, result.output
    assert "wrote 1 histogram (rec) of run 10005" in result.output
    assert "no PMT statistics are stored" in result.output
    with uproot.open(path) as f:
        assert rootexport.PMT_TREE not in f
        assert f["rec/energy"].title == "energy"  # no stored title: the name
        assert f["rec/energy"].axis().member("fTitle") == "energy"  # no label: the axis name
