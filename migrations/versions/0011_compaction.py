"""When a run's per-file results were compacted (the retention policy).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ALTER TABLE on every backend (SQLite's too): a batch copy of runs would break the views
# that read it.


def upgrade() -> None:
    op.add_column("runs", sa.Column("compacted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "compacted_at")
