"""Event tables: a file's reconstructed events stored with its results and read back per run."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from dqm import eventtable
from dqm.db import queries
from dqm.db.models import FileState
from dqm.db.session import transaction
from dqm.errors import InvalidValueError


def _columns(n: int, offset: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {name: (rng.normal(size=n) + offset).astype(np.float32) for name in eventtable.COLUMNS}


def test_a_runs_events_are_its_done_files_in_order(database: str) -> None:
    with transaction(database) as s:
        queries.add_run(s, run_id=5, run_type="physics", start_time=dt.datetime(2026, 11, 1))
        files = [queries.add_file(s, run_id=5, seq=k, uri=f"/raw/5.{k}.root") for k in range(3)]
        for k, file in enumerate(files):
            queries.save_event_table(s, run_id=5, file_id=file.id, columns=_columns(100, 10 * k))
        files[0].state = files[2].state = FileState.DONE  # file 1 not done: left out
        # processing file 2 again replaces its table
        queries.save_event_table(s, run_id=5, file_id=files[2].id, columns=_columns(50, 20))
    with transaction(database) as s:
        events = queries.run_events(s, run_id=5)
        assert set(events) == set(eventtable.COLUMNS)
        assert len(events["x_mm"]) == 150 and events["x_mm"].dtype == np.float32
        np.testing.assert_array_equal(events["energy_mev"][:100], _columns(100, 0)["energy_mev"])
        np.testing.assert_array_equal(events["energy_mev"][100:], _columns(50, 20)["energy_mev"])
        assert len(queries.run_events(s, run_id=5, max_events=120)["z_mm"]) == 120
        assert len(queries.run_events(s, run_id=999)["z_mm"]) == 0


def test_bad_tables_are_refused() -> None:
    columns = _columns(10, 0)
    with pytest.raises(InvalidValueError, match="needs the columns time_s"):
        eventtable.encode_event_table({k: v for k, v in columns.items() if k != "time_s"})
    with pytest.raises(InvalidValueError, match="differ in length"):
        eventtable.encode_event_table({**columns, "x_mm": columns["x_mm"][:5]})
    assert (
        len(eventtable.encode_event_table(_columns(20_000, 0))) < 500_000
    )  # compact: about 0.4 MB raw
