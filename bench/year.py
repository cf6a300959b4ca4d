"""A detector-year in the database: its size and the pages and commands that read it.

Fills an empty PostgreSQL database (``--database``; by default a new database ``dqm_year_<pid>`` on
127.0.0.1:5432, dropped at the end unless ``--keep``) with ``--runs`` one-hour runs (8,760: a
year) of ``--files`` files each (45), without raw processing. Every stored row comes from a real
run: the simulator writes a run, the job server processes, judges and compacts it, a shifter signs
it off and an expert certifies it, and each of its rows is copied to every run of the year. What
grows with a run's length is grown to an hour at 1 kHz first: the merged histograms' and the PMT
sums' counts (Poisson draws around the template's, scaled), the event sample (drawn from the
template's events until it holds ``DQM_EVENT_SAMPLE`` events), the files, their jobs and their
messages. Each run gets its own values of the analyses (a slow drift with noise), so that a trend
has something to show.

Figures (the last line is one JSON object):

- ``database_gb``: the database's size on disk after ``VACUUM ANALYZE``; ``gb_per_month`` the same
  for 720 runs; ``mb_per_run``; ``table_mb``: the largest tables.
- ``recent_runs_first_render_s``, ``run_page_first_render_s``, ``trend_year_first_render_s``:
  in Chromium, from the request to the page's content on the screen (median of 5 new pages),
  against ``dqm serve`` on that database: the recent-runs page, a run page (Base), a trend of one
  analysis variable over the whole year; ``panel_floor_first_render_s`` the same for a page of
  Panel alone (bench/dashboard.py's floor), what no page of the DQM can go under.
- ``pmt_history_year_ms``: one PMT's history over the year in the run page's PMT search, from the
  PMT number to the history's table and first dead run (median of 20 PMTs, in this process).
- ``goodruns_year_s``: ``dqm goodruns`` over the year, the whole command (median of 3).

    .venv/bin/python bench/year.py [--runs 8760] [--files 45] [--database URL] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import _benchpath
import numpy as np
import sqlalchemy as sa
from _benchpath import print_figures
from tqdm import tqdm

from daqsim import SimulationConfig, simulate_run
from dqm import eventtable, histcodec
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.models import AnalysisValue, Base, Run
from dqm.db.session import dispose_engines, transaction
from dqm.pmtstats import PMT_ARRAYS
from pipeline.executors import LocalExecutor
from pipeline.server import JobServer, ServerOptions

TEMPLATE_RUN = 900
FIRST_RUN = 100_000
EVENTS_PER_RUN = 3_600_000  # an hour at 1 kHz
YEAR_START = dt.datetime(2026, 1, 1)
SERVICE = "postgresql+psycopg://postgres@127.0.0.1:5432"

#: The tables a run's rows are in, parents first; rows of the others (declarations, masks,
#: calibrations) are the template's once.
PER_RUN = (
    "runs",
    "files",
    "jobs",
    "messages",
    "histograms",
    "pmt_stats",
    "event_tables",
    "kept_events",
    "pmt_status",
    "pmt_blocks",
    "analysis_results",
    "analysis_values",
    "analysis_figures",
    "check_results",
    "run_stage_quality",
    "run_decisions",
)


# --- the template: one real run, processed, judged, compacted, certified -----------------------


def template_run(tmp: Path, files: int, events: int) -> dict[str, list[dict[str, Any]]]:
    """The rows of one simulated run after the whole chain, by table."""
    url = f"sqlite:///{tmp / 'template.sqlite'}"
    migrate.upgrade(url)
    settings = load_settings(
        env={
            "DQM_DATA_DIR": str(tmp / "data"),
            "DQM_DATABASE_URL": url,
            "DQM_BROKER_URL": "filesystem://",
        }
    )
    config = SimulationConfig(
        run_id=TEMPLATE_RUN,
        n_files=files,
        events_per_file=events,
        n_jobs=1,
        start_time=YEAR_START - dt.timedelta(days=1),
    )
    simulate_run(config, settings, notify=True, progress=False, overwrite=True)
    options = ServerOptions(retry_base_s=0.2, availability_poll_s=0.2, poll_s=0.05)
    executor = LocalExecutor(2)
    try:
        JobServer(settings, executor, options).run(once=True, max_seconds=900)
        with transaction(url) as s:
            if str(queries.get_run(s, run_id=TEMPLATE_RUN).status) != "All Completed":
                failed = [
                    f"{job.kind}: {job.error}"
                    for job in queries.list_jobs(s, run_id=TEMPLATE_RUN, limit=None)
                    if str(job.state) != "DONE"
                ]
                sys.exit("the template run was not processed: " + "; ".join(failed))
            queries.decide(
                s,
                run_id=TEMPLATE_RUN,
                action="sign_off",
                user="shifter",
                role="shifter",
                comment="Clean run, all checks Good.",
            )
            queries.decide(s, run_id=TEMPLATE_RUN, action="certify", user="expert", role="expert")
        compacting = replace(settings, compact_after_s=0.0)
        JobServer(compacting, executor, options).run(once=True, max_seconds=300)
    finally:
        executor.close()
    rows: dict[str, list[dict[str, Any]]] = {}
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        for name, table in Base.metadata.tables.items():
            rows[name] = [dict(r._mapping) for r in connection.execute(sa.select(table))]
    engine.dispose()
    run = rows["runs"][0]
    if str(run["status"]) != "All Completed" or run["compacted_at"] is None:
        sys.exit(f"the template run ended {run['status']}, compacted: {run['compacted_at']}")
    return rows


# --- growing the template to an hour -------------------------------------------------------------


def _poisson_scaled(values: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Counts as an hour would give them: Poisson draws around the template's, scaled."""
    counts: np.ndarray = rng.poisson(np.clip(values, 0, None) * factor).astype(np.float64)
    return counts


def grown(template: dict[str, list[dict[str, Any]]], files: int, sample: int) -> dict[str, Any]:
    """The template's run-level blobs grown to an hour of data taking."""
    rng = np.random.default_rng(11)
    run = template["runs"][0]
    factor = EVENTS_PER_RUN / max(int(run["n_events"] or 1), 1)
    pmt = next(r for r in template["pmt_stats"] if r["file_id"] is None)
    arrays = {}
    for name in PMT_ARRAYS:
        values = histcodec.array_from_bytes(pmt[name])
        if name in ("hit_count", "fired_events", "dark_count", "signal_hits"):
            arrays[name] = histcodec.pack_array(_poisson_scaled(values, factor, rng))
        else:  # sums of measured values: the same scale, with a measurement's spread
            noise = rng.normal(1.0, 0.01, values.size)
            arrays[name] = histcodec.pack_array(values * factor * noise)
    histograms = []
    for row in template["histograms"]:
        if row["file_id"] is not None:
            continue
        new = dict(row)
        dtype = "<i8" if row["storage"] == "int64" else "<f8"
        values = np.frombuffer(row["values"], dtype=dtype)
        new["values"] = _poisson_scaled(values, factor, rng).astype(dtype).tobytes()
        if row["variances"] is not None:  # weighted: the variances scale as the values
            variances = np.frombuffer(row["variances"], dtype="<f8")
            new["variances"] = _poisson_scaled(variances, factor, rng).astype("<f8").tobytes()
        new["entries"] = float(row["entries"]) * factor
        histograms.append(new)
    # the event sample: as many of the template's events as the sample holds, jittered so that no
    # two are the same, over the hour
    template_events = []
    for row in template["event_tables"]:
        template_events.append(eventtable.read_event_table(row["data"]).columns)
    pool = {k: np.concatenate([t[k] for t in template_events]) for k in eventtable.COLUMNS}
    pick = rng.integers(0, len(pool["x_mm"]), sample)
    events = {
        "x_mm": pool["x_mm"][pick] + rng.normal(0, 30, sample),
        "y_mm": pool["y_mm"][pick] + rng.normal(0, 30, sample),
        "z_mm": pool["z_mm"][pick] + rng.normal(0, 30, sample),
        "energy_mev": pool["energy_mev"][pick] * rng.normal(1, 0.01, sample),
        "time_s": np.sort(rng.uniform(0, 3600, sample)),
    }
    events = {k: v.astype(np.float32) for k, v in events.items()}
    part = np.array_split(np.arange(sample), files)
    tables = [
        eventtable.encode_event_table({k: v[p] for k, v in events.items()}, sample_size=sample)
        for p in part
    ]
    return {"pmt_arrays": arrays, "histograms": histograms, "event_tables": tables}


# --- filling -------------------------------------------------------------------------------------


class Ids:
    """Explicit ids for the rows of the year, so that a child row knows its parent's."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, table: str) -> int:
        value = self.next.get(table, 1)
        self.next[table] = value + 1
        return value


def year_rows(
    template: dict[str, list[dict[str, Any]]],
    big: dict[str, Any],
    run_id: int,
    k: int,
    files: int,
    ids: Ids,
) -> dict[str, list[dict[str, Any]]]:
    """The rows of run ``run_id``, the ``k``-th of the year."""
    start = YEAR_START + dt.timedelta(hours=k)
    end = start + dt.timedelta(minutes=59, seconds=50)
    done = end + dt.timedelta(minutes=20)
    shift = start - template["runs"][0]["start_time"]
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in PER_RUN}

    def moved(value: Any) -> Any:
        return value + shift if isinstance(value, dt.datetime) else value

    run = {key: moved(value) for key, value in template["runs"][0].items()}
    run.update(
        run_id=run_id,
        start_time=start,
        end_time=end,
        n_events=EVENTS_PER_RUN,
        n_files=files,
        compacted_at=done + dt.timedelta(days=7),
    )
    out["runs"].append(run)
    file_template = template["files"][0]
    file_ids = []
    for seq in range(files):
        new_id = ids.take("files")
        file_ids.append(new_id)
        row = {key: moved(value) for key, value in file_template.items()}
        row.update(
            id=new_id,
            run_id=run_id,
            seq=seq,
            uri=f"root://eos.example.org//eos/juno/raw/{run_id}/{run_id}.{seq:03d}.root",
            n_events=EVENTS_PER_RUN // files,
        )
        out["files"].append(row)
    job_ids: dict[int, int] = {}
    for job in template["jobs"]:
        targets: list[int | None] = list(file_ids) if job["file_id"] is not None else [None]
        for file_id in targets:
            if job["file_id"] is not None and job["file_id"] != file_template["id"]:
                break  # the template's other files: one file's jobs stand for every file's
            new = {key: moved(value) for key, value in job.items()}
            new.update(id=ids.take("jobs"), run_id=run_id, file_id=file_id)
            job_ids.setdefault(job["id"], new["id"])
            out["jobs"].append(new)
    first_of_type: set[str] = set()
    for message in template["messages"]:
        if message["run_id"] != template["runs"][0]["run_id"] or message["type"] in first_of_type:
            continue  # one message of each type stands for all of its type
        first_of_type.add(message["type"])
        copies = files if "file" in str(message["type"]) else 1
        for _ in range(copies):
            new = {key: moved(value) for key, value in message.items()}
            new.update(id=ids.take("messages"), run_id=run_id)
            new["message_id"] = f"year-{new['id']}"
            out["messages"].append(new)
    for histogram in big["histograms"]:
        out["histograms"].append({**histogram, "id": ids.take("histograms"), "run_id": run_id})
    pmt = next(r for r in template["pmt_stats"] if r["file_id"] is None)
    out["pmt_stats"].append(
        {
            **pmt,
            **big["pmt_arrays"],
            "id": ids.take("pmt_stats"),
            "run_id": run_id,
            "n_events": EVENTS_PER_RUN,
            "livetime_ns": pmt["livetime_ns"] * EVENTS_PER_RUN / max(pmt["n_events"], 1),
        }
    )
    sample = big["event_tables"]
    for file_id, data in zip(file_ids, sample, strict=False):
        out["event_tables"].append(
            {
                "id": ids.take("event_tables"),
                "run_id": run_id,
                "file_id": file_id,
                "n_events": eventtable.read_event_table(data).columns["x_mm"].size,
                "data": data,
                "created_at": done,
            }
        )
    seq_of = {f["id"]: f["seq"] for f in template["files"]}
    for kept in template["kept_events"]:
        seq = seq_of[kept["file_id"]]
        new = {**kept, "id": ids.take("kept_events"), "run_id": run_id}
        new["file_id"] = file_ids[min(seq, files - 1)]
        out["kept_events"].append(new)
    for status in template["pmt_status"]:
        out["pmt_status"].append({**status, "run_id": run_id, "updated_at": done})
    for block in template["pmt_blocks"]:
        out["pmt_blocks"].append({**block, "run_id": run_id})
    result_ids = {}
    drift = 1.0 + 0.02 * np.sin(k / 700.0)
    noise = np.random.default_rng(run_id).normal(1.0, 0.003, 64)
    for result in template["analysis_results"]:
        result_ids[result["id"]] = ids.take("analysis_results")
        out["analysis_results"].append(
            {
                **result,
                "id": result_ids[result["id"]],
                "run_id": run_id,
                "job_id": job_ids.get(result["job_id"]),
                "created_at": done,
            }
        )
    for n, value in enumerate(template["analysis_values"]):
        out["analysis_values"].append(
            {
                **value,
                "result_id": result_ids[value["result_id"]],
                "run_id": run_id,
                "value": value["value"] * drift * noise[n % 64],
            }
        )
    for figure in template["analysis_figures"]:
        out["analysis_figures"].append({**figure, "result_id": result_ids[figure["result_id"]]})
    for check in template["check_results"]:
        out["check_results"].append(
            {
                **check,
                "id": ids.take("check_results"),
                "run_id": run_id,
                "job_id": job_ids.get(check["job_id"]),
                "evaluated_at": done,
            }
        )
    for quality in template["run_stage_quality"]:
        out["run_stage_quality"].append({**quality, "run_id": run_id})
    for decision in template["run_decisions"]:
        out["run_decisions"].append(
            {**decision, "id": ids.take("run_decisions"), "run_id": run_id, "at": done}
        )
    return out


def fill(url: str, template: dict[str, list[dict[str, Any]]], runs: int, files: int) -> None:
    """The year, a day of runs a transaction."""
    sample = load_settings(env={}).event_sample or eventtable.SAMPLE_EVENTS
    big = grown(template, files, sample)
    tables = Base.metadata.tables
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # what is not per run: declarations, masks, calibrations
        for table in Base.metadata.sorted_tables:
            if table.name not in PER_RUN and template[table.name]:
                connection.execute(sa.insert(table), template[table.name])
    ids = Ids()
    with tqdm(total=runs, unit="run", desc="filling", file=sys.stderr) as bar:
        for day in range(0, runs, 24):
            batch: dict[str, list[dict[str, Any]]] = {name: [] for name in PER_RUN}
            for k in range(day, min(day + 24, runs)):
                for name, rows in year_rows(template, big, FIRST_RUN + k, k, files, ids).items():
                    batch[name].extend(rows)
            with engine.begin() as connection:
                connection.execute(sa.text("SET LOCAL synchronous_commit = off"))
                for name in PER_RUN:
                    if batch[name]:
                        connection.execute(sa.insert(tables[name]), batch[name])
            bar.update(min(day + 24, runs) - day)
    with engine.begin() as connection:  # the sequences go on after the explicit ids
        for name, last in ids.next.items():
            connection.execute(
                sa.text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), :v)"),
                {"v": last},
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


# --- measuring -----------------------------------------------------------------------------------


def sizes(url: str) -> tuple[int, dict[str, float]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        total = connection.scalar(sa.text("SELECT pg_database_size(current_database())"))
        tables = connection.execute(
            sa.text(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE nspname = 'public' AND relkind = 'r'"
                " ORDER BY 2 DESC LIMIT 8"
            )
        ).all()
    engine.dispose()
    return int(total), {name: round(size / 1e6, 1) for name, size in tables}


@contextmanager
def database(url: str | None, keep: bool) -> Iterator[str]:
    if url:
        yield url
        return
    name = f"dqm_year_{os.getpid()}"
    admin = sa.create_engine(f"{SERVICE}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"{SERVICE}/{name}"
    finally:
        dispose_engines()
        if not keep:
            with admin.connect() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            print(f"kept the database {SERVICE}/{name}", file=sys.stderr)
        admin.dispose()


def goodruns_s(url: str, runs: int) -> float:
    command = [str(Path(sys.executable).parent / "dqm"), "goodruns"]
    env = {**os.environ, "DQM_DATABASE_URL": url}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
    last = done.stdout.strip().splitlines()[-1]  # "8760 good runs."
    listed = int(last.split()[0]) if last.endswith("good runs.") else 0
    if listed != runs:
        sys.exit(f"dqm goodruns listed {listed} runs of {runs}:\n{done.stdout[:2000]}")
    return statistics.median(times)


def pmt_history_ms(url: str, runs: int) -> float:
    """One PMT's history over every run of the year, as the run page's PMT search reads it."""
    from app.source import Source

    source = Source(url)
    times = []
    for pmt in np.random.default_rng(5).integers(0, 17_612, 11).tolist():
        t0 = time.perf_counter()
        history, _first_dead = source.pmt_history(int(pmt), "physics", limit=None)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(history) != runs:
            sys.exit(f"the history of PMT {pmt} has {len(history)} runs of {runs}")
    return statistics.median(times[1:])


def pages_s(url: str, runs: int, analysis: tuple[str, int, str]) -> dict[str, float]:
    sys.path.append(str(_benchpath.HERE))  # last: bench/pipeline.py must not hide the package
    from dashboard import Server, panel_floor_s  # type: ignore[import-not-found]
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "DQM_DATABASE_URL": url}
    server = Server(env)
    last = FIRST_RUN + runs - 1
    name, version, variable = analysis
    trend = f"page=trends&analysis={name}&version={version}&variables={variable}&x=run&days=400"
    pages = {
        "recent_runs_first_render_s": (f"{server.url}/?page=runs", str(last)),
        "run_page_first_render_s": (f"{server.url}/?page=run&run={last}", "All Completed"),
        "trend_year_first_render_s": (f"{server.url}/?{trend}", str(last)),
    }
    figures = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            for figure, (address, text) in pages.items():
                times = []
                for _ in range(6):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.set_default_timeout(60_000)
                    t0 = time.perf_counter()
                    page.goto(address)
                    page.get_by_text(text).first.wait_for()
                    times.append(time.perf_counter() - t0)
                    context.close()
                figures[figure] = round(statistics.median(times[1:]), 2)
            # the floor under every page: Panel alone, the same template, a table from memory
            figures["panel_floor_first_render_s"] = round(panel_floor_s(browser, env), 2)
            browser.close()
    finally:
        server.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8_760, help="one-hour runs (8760: a year)")
    parser.add_argument("--files", type=int, default=45, help="files a run")
    parser.add_argument("--database", help="an empty PostgreSQL database URL (default: a new one)")
    parser.add_argument("--keep", action="store_true", help="keep the database made")
    parser.add_argument("--template-files", type=int, default=3)
    parser.add_argument("--template-events", type=int, default=3_000)
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the year already in --database (one kept with --keep) without filling",
    )
    args = parser.parse_args()
    if args.runs < 24 or args.files < 1:
        parser.error("--runs must be 24 or more and --files 1 or more.")
    if args.measure_only and not args.database:
        parser.error("--measure-only needs --database, the URL of a year kept with --keep.")
    figures: dict[str, Any] = {}
    if not args.measure_only:
        with tempfile.TemporaryDirectory(prefix="dqm-year-") as tmp:
            t0 = time.perf_counter()
            template = template_run(Path(tmp), args.template_files, args.template_events)
            figures["template_s"] = round(time.perf_counter() - t0, 1)
    with database(args.database, args.keep) as url:
        if not args.measure_only:
            migrate.upgrade(url)
            t0 = time.perf_counter()
            fill(url, template, args.runs, args.files)
            figures["fill_s"] = round(time.perf_counter() - t0, 1)
        with transaction(url) as s:
            args.runs = s.scalar(sa.select(sa.func.count()).select_from(Run)) or 0
            args.files = s.scalar(sa.select(sa.func.max(Run.n_files))) or 0
            value = s.scalars(  # a variable that is not zero, so that the trend moves
                sa.select(AnalysisValue).where(AnalysisValue.value != 0).limit(1)
            ).one()
            analysis = (value.analysis, value.version, value.variable)
        total, tables = sizes(url)
        print(f"database: {total / 1e9:.2f} GB; largest tables (MB): {tables}", file=sys.stderr)
        figures = {
            "runs": args.runs,
            "files_per_run": args.files,
            **figures,
            "database_gb": round(total / 1e9, 2),
            "gb_per_month": round(total / args.runs * 720 / 1e9, 3),
            "mb_per_run": round(total / args.runs / 1e6, 3),
            "table_mb": tables,
        }
        figures["pmt_history_year_ms"] = round(pmt_history_ms(url, args.runs), 1)
        figures["goodruns_year_s"] = round(goodruns_s(url, args.runs), 2)
        figures.update(pages_s(url, args.runs, analysis))
        dispose_engines()
    print_figures(figures)


if __name__ == "__main__":
    main()
