"""PMT blocks kept inline on PostgreSQL.

A block row (a run's status codes and values of 256 PMTs, about 3.4 kB) is above PostgreSQL's
default threshold for moving values out of line (about 2 kB): each row's values went to the TOAST
table in two chunks, which cost a third more space and a second lookup for every row that one
PMT's history reads (a row a run). Rows up to the page's size now stay in the table. Other
backends keep such rows inline already.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # rows written from now on; `VACUUM FULL pmt_blocks` moves the older ones (see
        # docs/operations.md)
        op.execute("ALTER TABLE pmt_blocks SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pmt_blocks RESET (toast_tuple_target)")
