"""Shared core of the DQM system, used by both the job server and the dashboard.

Modules:
    config: the effective configuration (defaults, TOML file, ``DQM_*`` environment variables).
    errors: exceptions that carry one clear sentence for the user.
    detector: detector constants, the PMT table and the Aitoff projection of the PMT map.
    pmtclass: the classes of the PMTs (dead, hot, normal, other) by hit rate, and the default cuts.
    runs: rules about runs that are not queries (what a comment may hold).
    users: who may change things (logged-in users) and who only reads (anonymous visitors).
    geometry: generator of ``data/pmt_positions.csv`` (the large-PMT layout).
    histcodec: lossless conversion of ``hist.Hist`` objects to database rows and back.
    db: SQLAlchemy models, engine/session handling, query functions and Alembic migrations.
    cli: the ``dqm`` command line.
"""

from __future__ import annotations

__version__ = "0.1.0"
