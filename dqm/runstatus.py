"""The status of a run as the shifter sees it, derived from its messages, files and jobs.

=================  ==================================================================================
Data Taking        run_start seen, run_end not yet
Rec Running        run ended; files waiting or processing, none done yet
Partly Completed   run ended; some files done, other work still pending
All Completed      run ended; every announced file and the run-level merge and analyses are done
Failed             run ended; nothing is pending any more but a file or stage failed after its retries
                   (or its data never arrived): the reason is in the job's error
=================  ==================================================================================

An analysis that fails does not make its run Failed: the run's data are complete, and the failure is
the analysis's own (shown with its reason on the run's Analyses tab and the jobs page). A run waits
for its analyses, though, before it is All Completed.
"""

from __future__ import annotations

from collections.abc import Iterable

from dqm.states import FileState, JobState, RunStatus

#: The kind of the job that evaluates a run's checks: it judges the run and never holds its status
#: (checks run again once a run is All Completed).
CHECKS_JOB_KIND = "checks"

#: Job states in which work is still to come.
PENDING_JOB_STATES = frozenset({JobState.TODO, JobState.SUBMITTED, JobState.RUNNING})
#: Job states that end work without success.
FAILED_JOB_STATES = frozenset({JobState.FAILED, JobState.TOCHECK})


def derive_run_status(
    *,
    ended: bool,
    n_files_announced: int,
    n_files_expected: int | None,
    file_states: Iterable[FileState],
    job_states: Iterable[JobState],
    analysis_job_states: Iterable[JobState] = (),
) -> RunStatus:
    """The run status from the facts.

    Args:
        ended: whether run_end was received.
        n_files_announced: files announced by file_ready.
        n_files_expected: files the run_end message counted (None before run_end).
        file_states: the states of the run's files.
        job_states: the states of the run's jobs that process its data (files, merges).
        analysis_job_states: the states of its analysis jobs (pending ones keep the run from
            All Completed; failed ones do not fail it).
    """
    if not ended:
        return RunStatus.DATA_TAKING
    jobs = list(job_states)
    waiting_for_files = n_files_expected is not None and n_files_announced < n_files_expected
    pending = waiting_for_files or any(
        state in PENDING_JOB_STATES for state in (*jobs, *analysis_job_states)
    )
    failed = any(state in FAILED_JOB_STATES for state in jobs)
    if not pending:
        return RunStatus.FAILED if failed else RunStatus.ALL_COMPLETED
    if any(state == FileState.DONE for state in file_states):
        return RunStatus.PARTLY_COMPLETED
    return RunStatus.REC_RUNNING
