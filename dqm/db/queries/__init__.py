"""Query functions of the DQM database, by group of tables.

Plain functions that take a :class:`~sqlalchemy.orm.Session` and keyword-only arguments after it;
the caller owns the transaction (``with transaction(url) as session: ...``). The job server, the
dashboard's source and the command line all go through these: nothing else writes SQL. Every
function is available here as ``queries.<name>``.

Modules:
    runs: adding, changing, finding and listing runs; deriving their status.
    files_jobs: files and jobs, and the one transition function of jobs.
    messages: messages received from the broker, whatever their outcome.
    results: histograms, per-PMT statistics and event tables, per file and per run.
    calibrations: versions of PMT gains and time offsets, each valid from a run on.
    changes: who changed what through the dashboard, and the settings they change.
"""

from __future__ import annotations

from dqm.db.queries.calibrations import (
    add_calibration,
    calibration_for_run,
    first_calibration,
)
from dqm.db.queries.changes import (
    changes,
    cut_defaults,
    record_change,
    retry_job_as,
    save_cut_defaults,
    set_run_comment,
)
from dqm.db.queries.files_jobs import (
    FILE_STATE_OF_JOB,
    Retry,
    add_file,
    add_job,
    count_jobs_by_state,
    due_jobs,
    files_of_run,
    find_file,
    find_job,
    get_file,
    get_job,
    job_kinds,
    jobs_in_states,
    jobs_with_ids,
    list_jobs,
    open_job,
    record_heartbeat,
    retry_jobs,
    transition_job,
)
from dqm.db.queries.messages import (
    message_seen,
    messages,
    record_message,
    run_end_received_at,
)
from dqm.db.queries.results import (
    histogram_rows,
    histograms_of_files,
    load_histogram,
    pmt_arrays,
    pmt_stats_of_files,
    pmt_stats_row,
    run_events,
    save_event_table,
    save_histogram,
    save_pmt_stats,
)
from dqm.db.queries.runs import (
    FINAL_STATUSES,
    RUN_FIELDS,
    add_run,
    add_runs,
    delete_run,
    find_run,
    get_run,
    recent_runs,
    refresh_run_status,
    run_change_token,
    run_types,
    runs_missing_files,
    update_run,
)

__all__ = [
    "FILE_STATE_OF_JOB",
    "FINAL_STATUSES",
    "RUN_FIELDS",
    "Retry",
    "add_calibration",
    "add_file",
    "add_job",
    "add_run",
    "add_runs",
    "calibration_for_run",
    "changes",
    "count_jobs_by_state",
    "cut_defaults",
    "delete_run",
    "due_jobs",
    "files_of_run",
    "find_file",
    "find_job",
    "find_run",
    "first_calibration",
    "get_file",
    "get_job",
    "get_run",
    "histogram_rows",
    "histograms_of_files",
    "job_kinds",
    "jobs_in_states",
    "jobs_with_ids",
    "list_jobs",
    "load_histogram",
    "message_seen",
    "messages",
    "open_job",
    "pmt_arrays",
    "pmt_stats_of_files",
    "pmt_stats_row",
    "recent_runs",
    "record_change",
    "record_heartbeat",
    "record_message",
    "refresh_run_status",
    "retry_job_as",
    "retry_jobs",
    "run_change_token",
    "run_end_received_at",
    "run_events",
    "run_types",
    "runs_missing_files",
    "save_cut_defaults",
    "save_event_table",
    "save_histogram",
    "save_pmt_stats",
    "set_run_comment",
    "transition_job",
    "update_run",
]
