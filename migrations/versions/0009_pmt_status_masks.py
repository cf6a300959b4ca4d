"""The PMT status of every run (one byte a PMT; and by blocks of PMTs, with their rates, for
one PMT's history) and the versions of the PMT mask.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "pmt_status",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("run_type", sa.String(32), nullable=False),
        sa.Column("n_pmts", sa.Integer(), nullable=False),
        sa.Column("codes", BLOB, nullable=False),
        sa.Column("n_dead", sa.Integer(), nullable=False),
        sa.Column("n_hot", sa.Integer(), nullable=False),
        sa.Column("n_noisy", sa.Integer(), nullable=False),
        sa.Column("cuts", sa.JSON(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("n_events", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_pmt_status_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_pmt_status")),
    )
    op.create_index("ix_pmt_status_run_type_run_id", "pmt_status", ["run_type", "run_id"])
    op.create_table(
        "pmt_blocks",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("codes", sa.LargeBinary(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pmt_status.run_id"],
            name=op.f("fk_pmt_blocks_run_id_pmt_status"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "block", name=op.f("pk_pmt_blocks")),
    )
    op.create_index("ix_pmt_blocks_block_run_id", "pmt_blocks", ["block", "run_id"])
    op.create_table(
        "pmt_masks",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("valid_from_run", sa.Integer(), nullable=False),
        sa.Column("n_masked", sa.Integer(), nullable=False),
        sa.Column("pmts", BLOB, nullable=False),
        sa.Column("origin", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_pmt_masks")),
    )
    op.create_index("ix_pmt_masks_valid_from_run", "pmt_masks", ["valid_from_run"])


def downgrade() -> None:
    op.drop_table("pmt_masks")
    op.drop_table("pmt_blocks")
    op.drop_table("pmt_status")
