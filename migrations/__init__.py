"""Alembic environment of the DQM database (installed as ``dqm.migrations``)."""
