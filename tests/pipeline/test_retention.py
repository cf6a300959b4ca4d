"""The retention policy: a final run's per-file histograms and PMT sums are dropped once it has
ended ``compact_after`` ago, and nothing that a page, an analysis, a check, the report or the
export of the run needs is lost; a merge of a compacted run refuses in one sentence."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uproot
from helpers import make_settings, run_server, session, simulate

from app.source import Source
from dqm.db import migrate, queries
from dqm.db.models import EventTable, Histogram, JobState, KeptEvents, PmtStats, RunStatus
from dqm.keptevents import KEEP_FIRST, KEEP_HIGHEST, KeptEvent

RUN = 7101
SAMPLE = 150


def plain(value: Any) -> Any:
    """What a page shows of ``value``, as comparable plain data (arrays as lists, frames as
    records, dataclasses and objects as dictionaries)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tolist())
    if isinstance(value, pd.DataFrame):
        return ("frame", list(value.columns), plain(value.to_dict("records")))
    if isinstance(value, KeptEvent):
        return plain(dataclasses.asdict(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum | dt.datetime | dt.date):
        return str(value)
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    if hasattr(value, "view") and hasattr(value, "axes"):  # a hist.Hist
        return ("hist", plain(np.asarray(value.view(flow=True)).tolist()), str(value.axes))
    return value


def exported(source: Source, run_id: int) -> dict[str, Any]:
    """The ROOT file `dqm export` gives of the run, as its keys and their contents."""
    contents: dict[str, Any] = {}
    with uproot.open(io.BytesIO(source.root_file(run_id).read())) as root:
        for key, item in root.items(recursive=True, cycle=False):
            if hasattr(item, "to_numpy") and not hasattr(item, "arrays"):
                contents[key] = plain([np.asarray(a) for a in item.to_numpy(flow=True)])
            elif hasattr(item, "arrays"):
                contents[key] = plain(item.arrays(library="np"))
            elif isinstance(item, uproot.ReadOnlyDirectory):
                contents[key] = "directory"
            else:
                text = str(item)
                if key.startswith("run_info"):  # when it was exported, which is all that differs
                    info = json.loads(text)
                    info.get("export", {}).pop("exported_at")
                    text = json.dumps(info, sort_keys=True)
                contents[key] = text
    return contents


def every_page(source: Source, run_id: int) -> dict[str, Any]:
    """What each page of the run reads, and its report and export."""
    return {
        "base": plain(source.run_summary(run_id)),
        "calib": plain(source.histograms(run_id, "calib")),
        "rec": plain(source.histograms(run_id, "rec")),
        "events": plain(source.run_events(run_id)),
        "pmt": plain(source.pmt_quantities(run_id)),
        "pmt changes": plain(source.pmt_changes(run_id)),
        "kept events": plain(source.kept_events(run_id)),
        "checks": plain(source.run_checks(run_id)),
        "analyses": plain(source.run_analyses(run_id)),
        "certification": plain(source.run_certification(run_id)),
        "api run": plain(source.api_run(run_id)),
        "api quality": plain(source.api_quality(run_id)),
        # the report says when it was written, which is all that may differ
        "report": re.sub(r"report written [^<]*", "", source.run_report(run_id).read().decode()),
        "export": exported(source, run_id),
    }


def stored_events(settings, run_id: int) -> tuple[int, int]:
    """Reconstructed events and kept raw events stored of the run, over its files."""
    with session(settings) as s:
        tables = s.query(EventTable).filter(EventTable.run_id == run_id).all()
        kept = s.query(KeptEvents).filter(KeptEvents.run_id == run_id).all()
        assert all(t.file_id is not None for t in tables)
        return sum(t.n_events for t in tables), sum(k.n_events for k in kept)


def per_file_rows(settings, run_id: int) -> tuple[int, int]:
    with session(settings) as s:
        histograms = s.query(Histogram).filter(Histogram.run_id == run_id)
        pmt = s.query(PmtStats).filter(PmtStats.run_id == run_id)
        return (
            histograms.filter(Histogram.file_id.is_not(None)).count(),
            pmt.filter(PmtStats.file_id.is_not(None)).count(),
        )


@pytest.fixture
def processed(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'dqm.sqlite'}"
    migrate.upgrade(url)
    # a run's event sample smaller than its events, so that compaction has events to cut
    settings = replace(make_settings(tmp_path, url), event_sample=SAMPLE)
    simulate(settings, RUN, n_files=3, events=200)
    run_server(settings)  # the default policy: compacted a week after the end, not now
    with session(settings) as s:
        run = queries.get_run(s, run_id=RUN)
        assert run.status is RunStatus.ALL_COMPLETED and run.compacted_at is None
    return settings


def test_compaction_drops_the_per_file_results_and_changes_no_page(processed) -> None:
    settings = processed
    source = Source(settings.database_url)
    before = every_page(source, RUN)
    assert before["calib"] and before["rec"] and before["events"] and before["kept events"]
    assert before["analyses"] and before["checks"]
    assert per_file_rows(settings, RUN) == (3 * len(before["calib"] + before["rec"]), 3)
    # every file keeps its own sample and its own first and highest events until compaction
    assert len(before["events"][2]) == SAMPLE  # the records of the frame
    events, kept = stored_events(settings, RUN)
    assert events == 3 * SAMPLE and kept > 2 * (KEEP_FIRST + KEEP_HIGHEST)  # some are both
    # a final run shows its own set of kept events: its first and its highest
    reasons = [event["reasons"] for event in before["kept events"]]
    assert len(reasons) == KEEP_FIRST + KEEP_HIGHEST - sum(len(r) == 2 for r in reasons)

    run_server(replace(settings, compact_after_s=0.0))
    with session(settings) as s:
        assert queries.get_run(s, run_id=RUN).compacted_at is not None
    assert per_file_rows(settings, RUN) == (0, 0)
    assert stored_events(settings, RUN) == (SAMPLE, len(before["kept events"]))
    after = every_page(Source(settings.database_url), RUN)
    for page, shown in before.items():
        assert after[page] == shown, page


def test_a_merge_of_a_compacted_run_refuses_in_one_sentence(processed) -> None:
    settings = replace(processed, compact_after_s=0.0)
    run_server(settings)
    with session(settings) as s:
        job = queries.add_job(s, kind="merge_run", run_id=RUN)
        job_id = job.id
    run_server(settings)
    with session(settings) as s:
        job = queries.get_job(s, job_id=job_id)
        assert job.state is JobState.FAILED
        assert f"run {RUN} was compacted on" in job.error and "process its files again" in job.error
        assert "\n" not in job.error
        # the run's merged results stand
        assert queries.pmt_stats_row(s, run_id=RUN) is not None
        compacted = queries.compact_run(s, run_id=RUN)  # again: nothing left, nothing dropped
        assert (compacted.histograms, compacted.pmt_stats, compacted.bytes) == (0, 0, 0)


def test_runs_are_compacted_only_once_final_and_ended_long_enough_ago(processed) -> None:
    with session(processed) as s:
        run = queries.get_run(s, run_id=RUN)
        last_job = max(j.finished_at for j in queries.list_jobs(s, run_id=RUN, limit=None))
        assert run.end_time < last_job  # a simulated run of last month, processed now
        assert queries.runs_to_compact(s, before=last_job) == []
        assert queries.runs_to_compact(s, before=last_job + dt.timedelta(seconds=1)) == [RUN]
        run.status = RunStatus.REC_RUNNING
        assert queries.runs_to_compact(s, before=last_job + dt.timedelta(days=1)) == []
