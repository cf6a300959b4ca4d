"""Processing stages: pure functions that run in worker processes (no database access).

Modules:
    hits: read a raw file, count its events and fill the hits-per-event histogram; merge per run.
"""
