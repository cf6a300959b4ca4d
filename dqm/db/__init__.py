"""The DQM database.

Modules:
    models: SQLAlchemy models (runs, files, jobs, messages, histograms, pmt_stats, event tables,
        calibrations, changes, cut defaults).
    session: engines (SQLite with WAL and foreign keys), sessions and transactions.
    queries: the query functions every other part uses, by group of tables (a package); nothing
        else writes SQL.
    migrate: Alembic upgrade/downgrade/check from Python.
"""
