"""The one transition function of jobs: the file follows its job, and the one rule of retries."""

from __future__ import annotations

import datetime as dt

import pytest

from dqm.db import queries
from dqm.db.models import FileState, Job, JobState
from dqm.db.queries import FILE_STATE_OF_JOB, Retry, transition_job
from dqm.db.session import transaction
from dqm.errors import InvalidValueError

T0 = dt.datetime(2026, 11, 1, 8, 0, 0)


def job_with_file(session) -> Job:
    queries.add_run(session, run_id=5, run_type="physics", start_time=T0)
    file = queries.add_file(session, run_id=5, seq=0, uri="raw/5/5.0.root")
    return queries.add_job(session, kind="process_file", run_id=5, file_id=file.id)


def test_every_job_state_has_a_file_state() -> None:
    assert set(FILE_STATE_OF_JOB) == set(JobState)


@pytest.mark.parametrize("state", list(JobState))
def test_the_file_follows_its_job(sqlite_database: str, state: JobState) -> None:
    with transaction(sqlite_database) as s:
        job = job_with_file(s)
        retry = Retry.NOT_COUNTED if state is JobState.TODO else None
        transition_job(s, job=job, state=state, reason="why", retry=retry, worker="host:1", now=T0)
        assert queries.get_file(s, file_id=job.file_id).state is FILE_STATE_OF_JOB[state]
        assert job.state is state


def test_a_submission_counts_an_attempt_and_a_failure_keeps_it(sqlite_database: str) -> None:
    with transaction(sqlite_database) as s:
        job = job_with_file(s)
        transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:1", now=T0)
        assert (job.attempts, job.worker, job.submitted_at) == (1, "host:1", T0)
        later = T0 + dt.timedelta(seconds=5)
        transition_job(
            s,
            job=job,
            state=JobState.TODO,
            reason="boom",
            retry=Retry.AFTER_FAILURE,
            not_before=later,
            now=T0,
        )
        assert (job.attempts, job.interruptions, job.error, job.not_before) == (1, 0, "boom", later)


def test_an_interruption_gives_the_attempt_back_and_counts_apart(sqlite_database: str) -> None:
    with transaction(sqlite_database) as s:
        job = job_with_file(s)
        for _ in range(4):  # more interruptions than any attempt limit
            transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:1")
            transition_job(s, job=job, state=JobState.RUNNING)
            transition_job(
                s, job=job, state=JobState.TODO, reason="vanished", retry=Retry.AFTER_INTERRUPTION
            )
        assert (job.attempts, job.interruptions, job.error) == (0, 4, "vanished")
        transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:2")
        transition_job(
            s,
            job=job,
            state=JobState.FAILED,
            reason="vanished again",
            retry=Retry.AFTER_INTERRUPTION,
        )
        assert (job.attempts, job.interruptions, job.state) == (0, 5, JobState.FAILED)
        assert queries.get_file(s, file_id=job.file_id).state is FileState.FAILED


def test_a_stop_counts_nothing_and_a_fresh_retry_resets_everything(sqlite_database: str) -> None:
    with transaction(sqlite_database) as s:
        job = job_with_file(s)
        transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:1")
        transition_job(s, job=job, state=JobState.TODO, reason="shutdown", retry=Retry.NOT_COUNTED)
        assert (job.attempts, job.interruptions, job.error) == (0, 0, None)
        transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:1")
        transition_job(
            s, job=job, state=JobState.TODO, reason="vanished", retry=Retry.AFTER_INTERRUPTION
        )
        transition_job(s, job=job, state=JobState.SUBMITTED, worker="host:1")
        transition_job(s, job=job, state=JobState.FAILED, reason="boom", now=T0)
        assert (job.attempts, job.interruptions, job.finished_at) == (1, 1, T0)
        (retried,) = queries.retry_jobs(s, job_id=job.id)
        assert (retried.state, retried.attempts, retried.interruptions) == (JobState.TODO, 0, 0)
        assert (retried.error, retried.worker, retried.finished_at) == (None, None, None)
        assert queries.get_file(s, file_id=job.file_id).state is FileState.ANNOUNCED


def test_a_return_to_todo_must_say_what_it_resets(sqlite_database: str) -> None:
    with transaction(sqlite_database) as s:
        job = job_with_file(s)
        with pytest.raises(InvalidValueError, match="Retry"):
            transition_job(s, job=job, state=JobState.TODO)
        with pytest.raises(InvalidValueError, match="job server"):
            transition_job(s, job=job, state=JobState.SUBMITTED)
