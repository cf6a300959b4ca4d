"""Shared core of the DQM system, used by the job server, the dashboard and the DAQ simulator.

It imports none of them (a test checks it); they add their ``dqm`` commands through entry points.

Modules:
    config: the effective configuration (defaults, TOML file, ``DQM_*`` environment variables).
    errors: exceptions that carry one clear sentence for the user.
    paths: where the project lives.
    times: naive UTC datetimes everywhere, their parsing and their display.
    states: the states of runs, files, jobs and messages, and their parsers (no database layer).
    memory: giving freed memory back to the system (glibc), for long-lived processes.
    detector: detector constants, the PMT table and the Aitoff projection of the PMT map.
    pmtclass: the classes of the PMTs (dead, hot, normal, other) by hit rate, and the default cuts.
    pmtstatus: a run's PMT statuses (dead, hot, noisy, normal, other), their changes between runs,
        their blocks for one PMT's history, and the PMT masks' ids.
    runs: rules about runs that are not queries (what a run number and a comment may be).
    users: the roles and what each write needs (PERMISSIONS); the actor who asks.
    certification: the sign-off states of a run and the rules of its decisions.
    calibdiff: the PMTs that moved between two calibration versions.
    report: a run's self-contained HTML report.
    geometry: generator of ``data/pmt_positions.csv`` (the large-PMT layout).
    rawformat: the raw-file format, written by the simulator and read by the pipeline.
    messages: the messages of data transfer, one validated definition.
    broker: connections to the message broker and its queue.
    bytegroups: numbers' bytes grouped by significance, which compress (the shuffle filter).
    histcodec: lossless conversion of ``hist.Hist`` objects and per-PMT arrays to database rows.
    eventtable: a file's reconstructed events as a compact table, and a run's mergeable sample.
    keptevents: a few raw events of each file for the event display: choice and format.
    pmtstats: per-PMT quantities derived from the stored per-PMT sums.
    runstatus: the status of a run, derived from its messages, files and jobs.
    rootexport: a run's histograms and PMT statistics written to a ROOT file (``dqm export``).
    db: the database: models, sessions, query functions (a package) and migrations.
    analyses: offline-monitoring analyses: their contract, declarations, execution, built-ins.
    checks: automatic checks: qualities, declarations, judgements, references, back-testing.
    alarms: when a check's result opens or resolves an alarm, and who is told when.
    notify: where alarms are sent (e-mail, webhook), off the caller's thread.
    metrics: the names of the metrics for Prometheus, the rule of ``/health``, their HTTP server.
    cli: the ``dqm`` command line (a package: one module per group of commands).
"""

from __future__ import annotations

__version__ = "0.1.0"
