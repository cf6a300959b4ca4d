"""Alembic revisions of the DQM database."""
