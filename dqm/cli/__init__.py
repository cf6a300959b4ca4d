"""The ``dqm`` command line.

Core commands live here (configuration, database, runs, jobs, messages). The simulator, the job
server and the dashboard add their own commands (``dqm simulate``, ``dqm jobserver``, ``dqm serve``,
...) through the ``dqm.commands`` entry-point group, so that this package never imports them.

Every error a user can cause (bad option, unknown run, bad date, unreachable database) ends in one
line on standard error: exit code 2 for bad input, 1 for a failure of the system.

Modules:
    base: the click group (plugin commands, one-line errors), the commands' context, tables.
    database: ``dqm config`` and ``dqm init-db``.
    runs: ``dqm runs``, ``dqm run add|set|show|tag|untag|delete`` and ``dqm export``.
    analyses: ``dqm analyses list|run|results|backfill``.
    checks: ``dqm checks list|rerun|backtest``, ``dqm quality``, ``dqm reference`` and
        ``dqm alarms [show|ack|close]``.
    jobs: ``dqm jobs``, ``dqm retry`` and ``dqm messages``.
    certification: ``dqm signoff|certify|reopen|decisions`` and ``dqm goodruns``.
    pmts: ``dqm pmt history|changes`` and ``dqm mask list|show|derive|edit``.
    notify: ``dqm notify run-start|file-ready|run-end``.
    __main__: ``python -m dqm.cli``, the same as ``dqm``.
"""

from __future__ import annotations

from collections.abc import Sequence

# Each command module adds its commands to the group as it is imported, when one of its commands
# is asked for (dqm.cli.base.CORE_COMMANDS).
from dqm.cli.base import (
    COMMAND_GROUP,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    CliContext,
    DQMGroup,
    cli,
    fail,
    pass_cli_ctx,
)

__all__ = [
    "COMMAND_GROUP",
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "CliContext",
    "DQMGroup",
    "cli",
    "fail",
    "main",
    "pass_cli_ctx",
]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dqm`` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dqm")
