"""Checks, run quality, references and alarms: the declared checks, their last result per (check,
version, run), the quality of each run per stage and as a whole, the references pinned by hand,
the alarms with their history; and three per-PMT sums more (the signal hits of low-energy events).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
#: Per-PMT sums of the signal hits of low-energy events (gain and timing by region, for checks).
SIGNAL_ARRAYS = ("signal_hits", "signal_charge_sum", "signal_time_sum")

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE (no batch copy of runs, which the view analysis_results_view reads)
    op.add_column("runs", sa.Column("quality", sa.String(16), nullable=True))
    op.create_index("ix_runs_run_type_quality", "runs", ["run_type", "quality"])
    for name in SIGNAL_ARRAYS:
        op.add_column("pmt_stats", sa.Column(name, BLOB, nullable=True))

    op.create_table(
        "checks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("declaration", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_checks")),
    )

    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("reference_run", sa.Integer(), nullable=True),
        sa.Column("statistics", sa.Double(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_check_results_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_check_results_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_results")),
        sa.UniqueConstraint(
            "check_name",
            "version",
            "run_id",
            name=op.f("uq_check_results_check_name_version_run_id"),
        ),
    )
    op.create_index("ix_check_results_run_id", "check_results", ["run_id"])

    op.create_table(
        "run_stage_quality",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_run_stage_quality_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", name=op.f("pk_run_stage_quality")),
    )

    op.create_table(
        "reference_pins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_type", sa.String(32), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("reference_run", sa.Integer(), nullable=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_pins")),
    )
    op.create_index("ix_reference_pins_scope", "reference_pins", ["run_type", "run_id"])

    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("check_name", sa.String(64), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("run_type", sa.String(32), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
        sa.UniqueConstraint("key", name=op.f("uq_alarms_key")),
    )
    op.create_index("ix_alarms_state", "alarms", ["state"])
    op.create_index("ix_alarms_run_id", "alarms", ["run_id"])

    op.create_table(
        "alarm_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("user", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarms.id"],
            name=op.f("fk_alarm_events_alarm_id_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_events")),
    )
    op.create_index("ix_alarm_events_alarm_id", "alarm_events", ["alarm_id"])


def downgrade() -> None:
    op.drop_table("alarm_events")
    op.drop_table("alarms")
    op.drop_table("reference_pins")
    op.drop_table("run_stage_quality")
    op.drop_table("check_results")
    op.drop_table("checks")
    with op.batch_alter_table("pmt_stats") as batch:
        for name in SIGNAL_ARRAYS:
            batch.drop_column(name)
    op.drop_index("ix_runs_run_type_quality", table_name="runs")
    op.drop_column("runs", "quality")
