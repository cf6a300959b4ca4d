"""Offline-monitoring analyses: declarations, results with their variables and figures, backfills,
analysis jobs, run tags and the run attributes analyses read; the view ``analysis_results_view``
for other tools (Grafana).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: One row per (run, analysis, version, variable): what Grafana and SQL users read.
VIEW = """
CREATE VIEW analysis_results_view AS
SELECT v.run_id AS run, r.start_time AS time, v.analysis AS analysis, v.version AS version,
       v.variable AS variable, v.value AS value, v.error AS error, v.unit AS unit
FROM analysis_values v JOIN runs r ON r.run_id = v.run_id
"""


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=True))
        batch.add_column(sa.Column("source_z_mm", sa.Float(), nullable=True))
        batch.add_column(sa.Column("trigger_rate_hz", sa.Float(), nullable=True))
        batch.add_column(sa.Column("software_version", sa.String(64), nullable=True))

    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_run_tags_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "tag", name=op.f("pk_run_tags")),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])

    op.create_table(
        "analyses",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("declaration", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_analyses")),
    )

    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("since_run", sa.Integer(), nullable=True),
        sa.Column("until_run", sa.Integer(), nullable=True),
        sa.Column("n_runs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("analysis", sa.String(64), nullable=True))
        batch.add_column(sa.Column("analysis_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("traceback", LONGTEXT, nullable=True))
        batch.add_column(sa.Column("backfill_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_backfill_id_backfills"),
            "backfills",
            ["backfill_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_jobs_analysis_analysis_version", ["analysis", "analysis_version"])
        batch.create_index("ix_jobs_backfill_id", ["backfill_id"])

    op.create_table(
        "analysis_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
            name=op.f("fk_analysis_results_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_analysis_results_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_results")),
        sa.UniqueConstraint(
            "analysis",
            "version",
            "run_id",
            name=op.f("uq_analysis_results_analysis_version_run_id"),
        ),
    )
    op.create_index("ix_analysis_results_run_id", "analysis_results", ["run_id"])

    op.create_table(
        "analysis_values",
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("variable", sa.String(64), nullable=False),
        sa.Column("analysis", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("error", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["analysis_results.id"],
            name=op.f("fk_analysis_values_result_id_analysis_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", "variable", name=op.f("pk_analysis_values")),
    )
    op.create_index(
        "ix_analysis_values_trend",
        "analysis_values",
        ["analysis", "version", "variable", "run_id"],
    )

    op.create_table(
        "analysis_figures",
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("png", BLOB, nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["analysis_results.id"],
            name=op.f("fk_analysis_figures_result_id_analysis_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", "name", name=op.f("pk_analysis_figures")),
    )

    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW analysis_results_view")
    op.drop_table("analysis_figures")
    op.drop_table("analysis_values")
    op.drop_table("analysis_results")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("fk_jobs_backfill_id_backfills"), type_="foreignkey")
        batch.drop_index("ix_jobs_backfill_id")
        batch.drop_index("ix_jobs_analysis_analysis_version")
        batch.drop_column("backfill_id")
        batch.drop_column("traceback")
        batch.drop_column("analysis_version")
        batch.drop_column("analysis")
    op.drop_table("backfills")
    op.drop_table("analyses")
    op.drop_table("run_tags")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("software_version")
        batch.drop_column("trigger_rate_hz")
        batch.drop_column("source_z_mm")
        batch.drop_column("source")
