"""Processing raw files of known contents (tests/rawfixtures.py): what is counted follows from the
contents by construction, whatever the physics; a file without events, an event without hits, a hit
on a PMT that does not exist, an unknown method and a file that is not ROOT. (The physics of the
results: test_calib.py, test_reco.py, test_tlh.py, on simulated runs.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rawfixtures import FIVE_EVENTS, FIXTURES, Event, Hit, RawFixture, write_raw_file

from dqm import detector, rawformat
from dqm.config import REC_METHODS
from dqm.rawformat import RawFormatError
from pipeline.stages import calib, processing
from pipeline.stages.reading import RawFile


def params(fixture: RawFixture, **changes: Any) -> processing.FileTask:
    file = RawFile(
        path=fixture.path,
        run_id=fixture.run_id,
        seq=fixture.seq,
        size=fixture.path.stat().st_size,
        checksum=rawformat.adler32_file(fixture.path),
    )
    task = processing.FileTask(
        file=file, calibration=calib.CalibConstants.nominal(), rec_method="centroid"
    )
    return dataclasses.replace(task, **changes)


def unchecked(path: Path) -> processing.FileTask:
    """The task of a file at ``path``, announced without size and checksum."""
    task = params(FIVE_EVENTS)
    return dataclasses.replace(task, file=RawFile(path=path, run_id=task.file.run_id, seq=0))


@pytest.mark.parametrize("method", REC_METHODS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_counts_follow_from_the_contents(fixture: RawFixture, method: str) -> None:
    result = processing.process_file(params(fixture, rec_method=method))
    n = len(fixture.events)
    assert result.n_read == result.n_events == n
    assert result.livetime_ns == n * detector.PRETRIGGER_WINDOW_NS
    histograms = result.histograms
    assert histograms["calib"]["nhits"].sum(flow=True) == n
    pmts = fixture.per_hit()["pmt_id"]
    hits_per_pmt = np.bincount(pmts, minlength=detector.N_PMTS)
    np.testing.assert_array_equal(result.pmt_sums["hit_count"], hits_per_pmt)
    np.testing.assert_array_equal(histograms["calib"]["occupancy"].values(), hits_per_pmt)
    events_per_pmt = np.zeros(detector.N_PMTS)
    for event in fixture.events:  # a PMT hit twice in an event fired in one event
        events_per_pmt[sorted({hit.pmt_id for hit in event.hits})] += 1
    np.testing.assert_array_equal(result.pmt_sums["fired_events"], events_per_pmt)
    times_s = fixture.per_event()["trigger_time"] * 1e-9
    assert histograms["rec"]["trigger_rate"].sum(flow=True) == n
    assert histograms["rec"]["trigger_interval"].sum(flow=True) == max(n - 1, 0)
    if n:
        assert (result.first_trigger_s, result.last_trigger_s) == (times_s[0], times_s[-1])
    else:
        assert result.first_trigger_s is result.last_trigger_s is None
        assert all(len(column) == 0 for column in result.events.values())


@pytest.mark.parametrize("pmt_id", [-1, detector.N_PMTS])
def test_a_hit_on_a_pmt_that_does_not_exist(tmp_path: Path, pmt_id: int) -> None:
    odd = RawFixture(
        "odd.root", 0, (Event(0, 10, rawformat.TRIGGER_GLOBAL, (Hit(pmt_id, 1.0, 2.0),)),), (1,)
    )
    path = write_raw_file(odd, tmp_path / odd.name)
    with pytest.raises(
        RawFormatError, match=f"a hit has a PMT id outside 0..{detector.N_PMTS - 1}"
    ):
        processing.process_file(unchecked(path))


def test_unknown_method_and_foreign_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown reconstruction method 'fancy'"):
        processing.process_file(params(FIVE_EVENTS, rec_method="fancy"))
    text = tmp_path / "notes.root"
    text.write_text("not ROOT at all\n")
    with pytest.raises(RawFormatError, match="notes.root"):
        processing.process_file(unchecked(text))
