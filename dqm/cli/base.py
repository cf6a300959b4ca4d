"""What every command shares: the click group that adds plugin commands and turns errors into one
line, the context object passed to the commands, ``fail`` and the printing helpers."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from dqm import __version__
from dqm.config import Settings, load_settings
from dqm.db.session import check_schema, engine_for
from dqm.errors import ConfigError, DQMError, InvalidValueError, NotFoundError, first_line
from dqm.messages import MessageError
from dqm.rawformat import RawFormatError

#: Entry-point group through which other packages add subcommands.
COMMAND_GROUP = "dqm.commands"

#: Exit code for bad input (unknown run, bad date, bad option), as click uses for usage errors.
EXIT_BAD_INPUT = 2
#: Exit code for a failure of the system (database unreachable, ...).
EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` on standard error and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


#: The core commands and the module of :mod:`dqm.cli` that defines each. A module is imported
#: when one of its commands is asked for, so that ``dqm goodruns`` does not wait for the imports
#: of ``dqm checks`` (SciPy) or ``dqm analyses``; a test checks that the modules define exactly
#: these.
CORE_COMMANDS = {
    "analyses": "analyses",
    "signoff": "certification",
    "certify": "certification",
    "reopen": "certification",
    "decisions": "certification",
    "goodruns": "certification",
    "checks": "checks",
    "quality": "checks",
    "reference": "checks",
    "alarms": "checks",
    "config": "database",
    "init-db": "database",
    "jobs": "jobs",
    "retry": "jobs",
    "messages": "jobs",
    "notify": "notify",
    "pmt": "pmts",
    "mask": "pmts",
    "runs": "runs",
    "run": "runs",
    "export": "runs",
    "report": "runs",
}


class DQMGroup(click.Group):
    """A click group that adds plugin commands and turns DQM errors into one line; the core
    commands' modules are imported when a command of theirs is asked for (:data:`CORE_COMMANDS`)."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(CORE_COMMANDS) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in CORE_COMMANDS:
            importlib.import_module(f"dqm.cli.{CORE_COMMANDS[cmd_name]}")  # it adds its commands
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self._plugins():
            command = self._plugins()[cmd_name].load()
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Like click's, but a usage error is one line (``error: ...``) with exit code 2."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            if not standalone_mode:
                raise
            fail(f"{exc.format_message()}{hint}", EXIT_BAD_INPUT)
        except click.Abort:
            if not standalone_mode:
                raise
            fail("aborted.", EXIT_FAILURE)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            fail(exc.format_message(), exc.exit_code)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InvalidValueError, NotFoundError, ConfigError, MessageError, RawFormatError) as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except DQMError as exc:
            fail(str(exc), EXIT_FAILURE)
        except SQLAlchemyError as exc:
            fail(f"the database refused the request: {first_line(exc)}", EXIT_FAILURE)
        except OverflowError:  # a number no column holds, which an option let through
            fail("a number given is larger than the database keeps.", EXIT_BAD_INPUT)


class CliContext:
    """What the commands share: the configuration, loaded on first use.

    Click's context object (``ctx.obj``): the core commands get it through ``pass_cli_ctx``, the
    plugin commands through ``click.pass_obj``.
    """

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    @property
    def user(self) -> str:
        """Who makes a change from the command line, as the changes record it (``name@cli``)."""
        import getpass

        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no user name for this uid (a container)
            name = "unknown"
        return f"{name}@cli"[:64]

    def database(self) -> str:
        """The database URL, after checking that the database is reachable and migrated."""
        url = self.settings.database_url
        check_schema(engine_for(url))
        return url


#: Passes the CliContext as the first argument. A command that also takes ``**options`` makes that
#: argument positional-only (``cli_ctx, /``): otherwise a type checker must assume that an option
#: could be named ``cli_ctx``.
pass_cli_ctx = click.make_pass_decorator(CliContext)


@click.group(cls=DQMGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="DQM_CONFIG",
    help="TOML configuration file (default: ./dqm.toml if present). Environment variables win.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="dqm")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int) -> None:
    """Data-quality monitoring of the detector: database, runs, job server and dashboard."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CliContext(config_file)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as a table of ``columns`` (key, title), each as wide as its widest cell."""
    cells = [
        [("" if row[key] is None else str(row[key])) for key, _title in columns] for row in rows
    ]
    widths = [
        max([len(title)] + [len(line[i]) for line in cells])
        for i, (_key, title) in enumerate(columns)
    ]
    click.echo("  ".join(title.ljust(w) for (_k, title), w in zip(columns, widths, strict=True)))
    for line in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
