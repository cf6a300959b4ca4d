"""Initial schema: runs, files, jobs, messages, histograms, PMT statistics, calibrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Column types as the models declare them (dqm.db.models), spelled out so that this revision
# never changes when the models do.
BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
ENUM_STRING = sa.String(length=20)  # dqm.db.models.EnumString: the value of a string enum

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calibrations",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from_run", sa.Integer(), nullable=False),
        sa.Column("valid_to_run", sa.Integer(), nullable=True),
        sa.Column("source_run", sa.Integer(), nullable=True),
        sa.Column("n_pmts", sa.Integer(), nullable=False),
        sa.Column("gains", BLOB, nullable=False),
        sa.Column("time_offsets", BLOB, nullable=False),
        sa.Column("pmt_status", BLOB, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_calibrations")),
    )
    op.create_index("ix_calibrations_valid_from_run", "calibrations", ["valid_from_run"])

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("payload", LONG_TEXT, nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", ENUM_STRING, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_messages_message_id")),
    )
    op.create_index("ix_messages_outcome", "messages", ["outcome"])
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_run_id", "messages", ["run_id"])

    op.create_table(
        "runs",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("detector", sa.String(length=32), nullable=False),
        sa.Column("run_type", sa.String(length=32), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("status", ENUM_STRING, nullable=False),
        sa.Column("n_events", sa.BigInteger(), nullable=True),
        sa.Column("n_files", sa.Integer(), nullable=True),
        sa.Column("sampling_fraction", sa.Float(), nullable=False),
        sa.Column("rec_method", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_end_time", "runs", ["end_time"])
    op.create_index("ix_runs_run_type", "runs", ["run_type"])
    op.create_index("ix_runs_start_time", "runs", ["start_time"])
    op.create_index("ix_runs_status_end_time", "runs", ["status", "end_time"])

    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=16), nullable=True),
        sa.Column("n_events", sa.BigInteger(), nullable=True),
        sa.Column("arrived_at", sa.DateTime(), nullable=False),
        sa.Column("state", ENUM_STRING, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_files_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_files_run_id_seq")),
    )
    op.create_index("ix_files_state", "files", ["state"])

    op.create_table(
        "histograms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("axes", sa.JSON(), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("values", BLOB, nullable=False),
        sa.Column("variances", BLOB, nullable=True),
        sa.Column("entries", sa.Float(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_histograms_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_histograms_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_histograms")),
        sa.UniqueConstraint(
            "file_id", "stage", "name", name=op.f("uq_histograms_file_id_stage_name")
        ),
    )
    op.create_index("ix_histograms_run_id_stage_name", "histograms", ["run_id", "stage", "name"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("state", ENUM_STRING, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_jobs_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_jobs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_file_id", "jobs", ["file_id"])
    op.create_index("ix_jobs_run_id_kind", "jobs", ["run_id", "kind"])
    op.create_index("ix_jobs_state_not_before", "jobs", ["state", "not_before"])

    op.create_table(
        "pmt_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("n_pmts", sa.Integer(), nullable=False),
        sa.Column("n_events", sa.BigInteger(), nullable=False),
        sa.Column("livetime_ns", sa.Float(), nullable=False),
        sa.Column("hit_count", BLOB, nullable=False),
        sa.Column("fired_events", BLOB, nullable=False),
        sa.Column("charge_sum", BLOB, nullable=False),
        sa.Column("time_sum", BLOB, nullable=False),
        sa.Column("dark_count", BLOB, nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_pmt_stats_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_pmt_stats_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pmt_stats")),
        sa.UniqueConstraint("run_id", "file_id", name=op.f("uq_pmt_stats_run_id_file_id")),
    )


def downgrade() -> None:
    # Dropping a table drops its indices; dropping them first fails on MariaDB for the
    # indices that back a foreign key.
    for table in ("pmt_stats", "jobs", "histograms", "files", "runs", "messages", "calibrations"):
        op.drop_table(table)
