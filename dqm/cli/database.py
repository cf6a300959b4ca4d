"""The configuration and the database schema: ``dqm config``, ``dqm init-db``."""

from __future__ import annotations

import json

import click
from sqlalchemy.exc import SQLAlchemyError

from dqm.cli.base import CliContext, cli, pass_cli_ctx
from dqm.config import KEYS
from dqm.db import migrate
from dqm.errors import DatabaseError, first_line


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_cli_ctx
def config_command(cli_ctx: CliContext, as_json: bool) -> None:
    """Print the effective configuration (passwords masked) and where each value comes from."""
    settings = cli_ctx.settings
    values = settings.masked()
    if as_json:
        click.echo(json.dumps({**values, "sources": dict(settings.sources)}, indent=2))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        source = settings.sources.get(key, "")
        suffix = f"   ({source})" if source else ""
        click.echo(f"{key:<{width}}  {value}{suffix}")
    click.echo()
    click.echo("Environment variables: " + ", ".join(var for var, _doc in KEYS.values()))


@cli.command("init-db")
@pass_cli_ctx
def init_db(cli_ctx: CliContext) -> None:
    """Create or upgrade the database schema to the newest revision (idempotent)."""
    url = cli_ctx.settings.database_url
    before = _current_revision(url)
    migrate.upgrade(url, "head")
    after = migrate.current_revision(url)
    masked = cli_ctx.settings.masked()["database_url"]
    if before == after:
        click.echo(f"database {masked} is up to date (revision {after}).")
    else:
        click.echo(f"database {masked} migrated from {before or 'empty'} to revision {after}.")


def _current_revision(url: str) -> str | None:
    try:
        return migrate.current_revision(url)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"database is not reachable: {first_line(exc)}") from exc
