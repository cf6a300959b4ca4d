"""The job server: message intake, scheduler, executors and processing stages.

It writes the DQM database through ``dqm.db`` and never imports ``app`` or ``daqsim``.

Modules:
    server: the job server's loop, driving the consumer and the scheduler; outages of either side.
    consumer: the broker consumer; each message recorded through intake, acknowledged after commit.
    intake: a message validated and recorded with its effects (run, file, jobs) in one transaction.
    scheduler: jobs through their states: results stored, submissions, leases, timeouts, retries.
    jobs: the registry of job kinds (``process_file``, ``merge_run``): when, prepare, complete.
    executors: where the work runs: local worker processes (loky) or a Dask cluster.
    metrics: the job server's metrics for Prometheus (messages, jobs, durations, files, alarms).
    failpoints: named crash points for the crash-safety tests (``DQM_FAILPOINTS``).
    cli: the ``dqm jobserver`` and ``dqm calibrate`` commands (added through entry points).
    stages: the processing stages, pure functions run in worker processes.
"""
