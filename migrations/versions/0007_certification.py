"""Sign-off and certification: each run's decisions (sign-off per stage, certification, sent back),
kept for ever, and the latest decision's state and verdict on the run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE (no batch copy of runs, which the view analysis_results_view reads)
    op.add_column("runs", sa.Column("certification", sa.String(16), nullable=True))
    op.add_column("runs", sa.Column("verdict", sa.String(16), nullable=True))
    op.create_index("ix_runs_certification", "runs", ["certification", "verdict"])
    op.create_table(
        "run_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_run_decisions_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_decisions")),
    )
    op.create_index("ix_run_decisions_run_id", "run_decisions", ["run_id"])


def downgrade() -> None:
    op.drop_table("run_decisions")
    op.drop_index("ix_runs_certification", table_name="runs")
    op.drop_column("runs", "verdict")
    op.drop_column("runs", "certification")
