"""The run status as docs/architecture.md defines it, from messages, files and jobs."""

from __future__ import annotations

import pytest

from dqm.db.models import FileState as F
from dqm.db.models import JobState as J
from dqm.db.models import RunStatus as R
from dqm.runstatus import derive_run_status


@pytest.mark.parametrize(
    ("ended", "announced", "expected", "files", "jobs", "status"),
    [
        (False, 0, None, [], [], R.DATA_TAKING),
        (False, 2, None, [F.DONE, F.DONE], [J.DONE, J.DONE, J.DONE], R.DATA_TAKING),
        (True, 2, 2, [F.ANNOUNCED, F.PROCESSING], [J.TODO, J.RUNNING], R.REC_RUNNING),
        (True, 2, 2, [F.DONE, F.PROCESSING], [J.DONE, J.RUNNING, J.TODO], R.PARTLY_COMPLETED),
        (True, 2, 2, [F.DONE, F.FAILED], [J.DONE, J.FAILED, J.TODO], R.PARTLY_COMPLETED),
        (True, 1, 2, [F.DONE], [J.DONE, J.DONE], R.PARTLY_COMPLETED),  # a file still to come
        (True, 0, 1, [], [], R.REC_RUNNING),
        (True, 2, 2, [F.DONE, F.DONE], [J.DONE, J.DONE, J.DONE], R.ALL_COMPLETED),
        (True, 0, 0, [], [J.DONE], R.ALL_COMPLETED),
        (True, 2, 2, [F.DONE, F.FAILED], [J.DONE, J.FAILED, J.DONE], R.FAILED),
        (True, 2, 2, [F.DONE, F.MISSING], [J.DONE, J.TOCHECK, J.DONE], R.FAILED),
        (True, 1, 1, [F.DONE], [J.DONE, J.FAILED], R.FAILED),  # the merge failed
    ],
)
def test_derive_run_status(ended, announced, expected, files, jobs, status) -> None:
    assert (
        derive_run_status(
            ended=ended,
            n_files_announced=announced,
            n_files_expected=expected,
            file_states=files,
            job_states=jobs,
        )
        is status
    )
