"""Offline-monitoring analyses: ``dqm analyses list|run|results|backfill``.

Every command reads the declarations first (built in, installed packages, the operator's file) and
refuses a wrong one with one sentence naming the file and the entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from tqdm import tqdm

from dqm import __version__
from dqm.analyses.declarations import Catalog, load_catalog
from dqm.analyses.execute import AnalysisTask, run_analysis
from dqm.analyses.records import plan_backfill, queue_backfill, record_catalog
from dqm.analyses.runview import build_run_view, missing_requirements
from dqm.cli.base import CliContext, cli, pass_cli_ctx, print_table
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID
from dqm.times import format_time


def _catalog(cli_ctx: CliContext) -> Catalog:
    return load_catalog(cli_ctx.settings.analyses_file)


@cli.group("analyses")
def analyses_group() -> None:
    """Offline-monitoring analyses: declarations, results, trying one, backfilling a version."""


@analyses_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def analyses_list(cli_ctx: CliContext, as_json: bool) -> None:
    """The analyses declared, and how many runs have results of each version."""
    catalog = _catalog(cli_ctx)
    with transaction(cli_ctx.database()) as session:
        counts = queries.result_counts(session)
    rows = []
    for declaration in catalog:
        others = sorted(
            (version, n)
            for (name, version), n in counts.items()
            if name == declaration.name and version != declaration.version
        )
        rows.append(
            {
                "name": declaration.name,
                "version": declaration.version,
                "when": declaration.when,
                "run_types": ",".join(sorted(declaration.run_types or ())) or "all",
                "variables": ", ".join(declaration.variables),
                "runs": counts.get((declaration.name, declaration.version), 0),
                "other_versions": ", ".join(f"v{v}: {n}" for v, n in others),
                "origin": declaration.origin,
            }
        )
    # Analyses with results that nothing declares any more.
    for (name, version), n in sorted(counts.items()):
        if name not in catalog:
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "when": "",
                    "run_types": "",
                    "variables": "",
                    "runs": n,
                    "other_versions": "",
                    "origin": "(no longer declared)",
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(
        rows,
        [
            ("name", "analysis"),
            ("version", "version"),
            ("when", "when"),
            ("run_types", "runs of type"),
            ("runs", "runs with results"),
            ("other_versions", "other versions"),
            ("variables", "variables"),
        ],
    )


@analyses_group.command("run")
@click.argument("name")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def analyses_run(cli_ctx: CliContext, /, name: str, run_id: int, as_json: bool) -> None:
    """Run analysis NAME on run RUN_ID here and now, and print its result (nothing is stored):
    for developing an analysis."""
    declaration = _catalog(cli_ctx).get(name)
    with transaction(cli_ctx.database()) as session:
        run = queries.get_run(session, run_id=run_id)
        if not declaration.applies_to(
            run_id=run_id,
            run_type=run.run_type,
            tags=queries.run_tags(session, run_id=run_id),
        ):
            click.echo(
                f"note: {name} does not apply to run {run_id} ({run.run_type}); running it anyway.",
                err=True,
            )
        missing = missing_requirements(session, run_id=run_id, requires=declaration.requires)
        if missing:
            raise InvalidValueError(
                f"run {run_id} lacks what {name} requires: {', '.join(missing)}."
            )
        view = build_run_view(session, run_id=run_id, requires=declaration.requires)
    output = run_analysis(AnalysisTask(declaration=declaration, view=view))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "analysis": output.analysis,
                    "version": output.version,
                    "run": output.run_id,
                    "seconds": round(output.seconds, 4),
                    "variables": {
                        v.variable: {"value": v.value, "error": v.error, "unit": v.unit}
                        for v in output.variables
                    },
                    "data": output.data,
                    "figures": {k: len(v) for k, v in output.figures.items()},
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{output.analysis} v{output.version} on run {output.run_id} ({output.seconds:.2f} s):"
    )
    print_table(
        [
            {
                "variable": v.variable,
                "value": f"{v.value:.6g}",
                "error": "" if v.error is None else f"{v.error:.2g}",
                "unit": v.unit,
                "meaning": declaration.variables[v.variable].meaning,
            }
            for v in output.variables
        ],
        [
            ("variable", "variable"),
            ("value", "value"),
            ("error", "±"),
            ("unit", "unit"),
            ("meaning", "meaning"),
        ],
    )
    if output.data:
        click.echo(f"data: {', '.join(sorted(output.data))}")
    if output.figures:
        sizes = ", ".join(f"{k} ({len(v):,} bytes)" for k, v in output.figures.items())
        click.echo(f"figures: {sizes}")


@analyses_group.command("results")
@click.option(
    "--run", "run_id", type=click.IntRange(0, MAX_ID), default=None, help="Only this run."
)
@click.option("--analysis", default=None, help="Only this analysis.")
@click.option(
    "--version", type=click.IntRange(1, MAX_ID), default=None, help="Only this version of it."
)
@click.option("--variable", default=None, help="Only this variable.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, MAX_ID),
    default=200,
    show_default=True,
    help="At most N.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli_ctx
def analyses_results(
    cli_ctx: CliContext,
    run_id: int | None,
    analysis: str | None,
    version: int | None,
    variable: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Stored results: one line per variable, newest runs first."""
    rows: list[dict[str, Any]] = []
    with transaction(cli_ctx.database()) as session:
        if run_id is not None:
            queries.get_run(session, run_id=run_id)
        results = queries.analysis_results(
            session, run_id=run_id, analysis=analysis, version=version, limit=limit
        )
        for result in results:
            for value in result.values:
                if variable is not None and value.variable != variable:
                    continue
                rows.append(
                    {
                        "run": result.run_id,
                        "analysis": result.analysis,
                        "version": result.version,
                        "variable": value.variable,
                        "value": value.value,
                        "error": value.error,
                        "unit": value.unit,
                        "time": format_time(result.created_at),
                    }
                )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no results match.")
        return
    print_table(
        [
            {
                **row,
                "value": f"{row['value']:.6g}",
                "error": "" if row["error"] is None else f"{row['error']:.2g}",
            }
            for row in rows
        ],
        [
            ("run", "run"),
            ("analysis", "analysis"),
            ("version", "v"),
            ("variable", "variable"),
            ("value", "value"),
            ("error", "±"),
            ("unit", "unit"),
            ("time", "stored"),
        ],
    )


@analyses_group.command("backfill")
@click.argument("name")
@click.option(
    "--version",
    type=click.IntRange(1, MAX_ID),
    default=None,
    help="The version to queue; must be the one declared [the declared one].",
)
@click.option(
    "--since", "since_run", type=click.IntRange(0, MAX_ID), default=None, help="From this run on."
)
@click.option(
    "--until", "until_run", type=click.IntRange(0, MAX_ID), default=None, help="Up to this run."
)
@click.option("--redo", is_flag=True, help="Also the runs that have a result of this version.")
@click.option("--wait", is_flag=True, help="Then follow the jobs until they have all finished.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@pass_cli_ctx
def analyses_backfill(
    cli_ctx: CliContext,
    /,
    name: str,
    version: int | None,
    since_run: int | None,
    until_run: int | None,
    redo: bool,
    wait: bool,
    quiet: bool,
) -> None:
    """Queue analysis NAME over past runs whose processing has finished (a job per run; the job
    server runs them). Results of other versions stay as they are."""
    catalog = _catalog(cli_ctx)
    declaration = catalog.get(name)
    if version is not None and version != declaration.version:
        raise InvalidValueError(
            f"{name} version {version} is not declared; {declaration.origin} declares version "
            f"{declaration.version} (declare the version to backfill first)."
        )
    url = cli_ctx.database()
    with transaction(url) as session:
        record_catalog(session, catalog)
        plan = plan_backfill(
            session,
            declaration=declaration,
            since_run=since_run,
            until_run=until_run,
            redo=redo,
        )
        left_out = []
        if plan.with_result and not redo:
            left_out.append(f"{plan.with_result} with a result already (--redo to run them again)")
        if plan.pending:
            left_out.append(f"{plan.pending} with a job pending")
        if not plan.runs:
            click.echo(
                f"nothing to backfill: no finished run needs {name} v{declaration.version}"
                + (f" ({'; '.join(left_out)})" if left_out else "")
                + "."
            )
            return
        with tqdm(
            total=len(plan.runs), desc=f"queue {name} v{declaration.version}", disable=quiet
        ) as bar:
            backfill = queue_backfill(
                session,
                plan=plan,
                since_run=since_run,
                until_run=until_run,
                code_version=__version__,
                created_by=cli_ctx.user,
                progress=bar.update,
            )
    click.echo(
        f"backfill {backfill.id}: {len(plan.runs)} run(s) queued for {name} "
        f"v{declaration.version}" + (f"; left out: {'; '.join(left_out)}" if left_out else "") + "."
    )
    if wait:
        _follow(url, backfill.id, len(plan.runs), quiet)


def _follow(url: str, backfill_id: int, total: int, quiet: bool) -> None:
    """A progress bar over a backfill's jobs until they have all finished."""
    with tqdm(total=total, desc=f"backfill {backfill_id}", disable=quiet) as bar:
        while True:
            with transaction(url) as session:
                (progress,) = queries.backfill_progress(session, backfill_id=backfill_id)
            bar.update(progress.finished - bar.n)
            if progress.finished >= progress.total:
                break
            time.sleep(1.0)
    failed = sum(n for state, n in progress.jobs_by_state.items() if state.value != "DONE")
    click.echo(
        f"backfill {backfill_id}: {progress.finished} job(s) finished"
        + (f", {failed} not DONE (see 'dqm jobs --kind analysis')" if failed else "")
        + "."
    )
