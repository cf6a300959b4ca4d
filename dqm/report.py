"""A run's report: one self-contained HTML file (no external resource: inline style, images as
data URIs) with the run's status, quality and sign-off, every check with its sentence, the key
histograms against the reference, the analysis values with their recent trend, the PMT changes,
the processing summary and the provenance.

    dqm report RUN -o run10007.html

Made from the database with the query functions; the figures are drawn by Matplotlib's Agg
canvas (no display, no global state). Everything a run holds is escaped: a comment or a sentence
cannot inject anything into the page.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from dqm import pmtstatus
from dqm.certification import certification_of, describe
from dqm.checks.declarations import HISTOGRAMS
from dqm.checks.quality import Quality
from dqm.checks.references import choose_reference
from dqm.db import queries
from dqm.histcodec import AnyHist
from dqm.times import format_time, utcnow

__all__ = ["KEY_HISTOGRAMS", "run_report"]

#: The histograms a report draws (stage, name), in order.
KEY_HISTOGRAMS: tuple[tuple[str, str], ...] = tuple(
    (stage, name) for stage, names in HISTOGRAMS.items() for name in names
)
#: How many earlier runs of the type an analysis value's trend shows.
TREND_RUNS = 30

_COLOURS = {
    "Good": "#009E73",
    "Warning": "#E69F00",
    "Bad": "#D55E00",
    "TooFew": "#BBBBBB",
    "Unknown": "#CC79A7",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 3px 8px;
border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
.badge { padding: 1px 7px; border-radius: 4px; color: black; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figure { border: 3px solid #ddd; padding: 4px; } .figure p { margin: 2px; font-size: 0.9em; }
.muted { color: #666; }
"""


def _badge(quality: str | None) -> str:
    if not quality:
        return "<span class='badge' style='border:1px solid #999'>not judged</span>"
    colour = _COLOURS.get(quality, "#ddd")
    return f"<span class='badge' style='background:{colour}'>{html.escape(quality)}</span>"


def _png(figure: Any) -> str:
    """A Matplotlib figure as an <img> with a data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='' src='data:image/png;base64,{data}'>"


def _steps(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A histogram's outline as one line (a Line2D draws tens of thousands of bins at once,
    where a patch's limits are walked bin by bin)."""
    return np.repeat(np.asarray(edges, dtype=float), 2)[1:-1], np.repeat(values, 2)


def _histogram_figure(run: AnyHist, reference: AnyHist | None, title: str) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 2.8))
    figure.subplots_adjust(left=0.17, bottom=0.18, right=0.97, top=0.9)  # no layout solver
    axes = figure.subplots()
    if run.ndim == 1:
        edges = run.axes[0].edges
        values = np.asarray(run.values(), dtype=float)
        total = values.sum()
        axes.plot(*_steps(edges, values / total if total else values), label="run", linewidth=1.2)
        if reference is not None and reference.ndim == 1:
            ref_values = np.asarray(reference.values(), dtype=float)
            ref_total = ref_values.sum()
            axes.plot(
                *_steps(
                    reference.axes[0].edges, ref_values / ref_total if ref_total else ref_values
                ),
                label="reference",
                linestyle="--",
                color="grey",
                linewidth=1.0,
            )
            axes.legend(fontsize=7)
        axes.set_xlabel(run.axes[0].label or run.axes[0].name or "", fontsize=8)
        axes.set_ylabel("fraction", fontsize=8)
    else:
        x, y = run.axes[0].edges, run.axes[1].edges
        axes.pcolormesh(x, y, np.asarray(run.values(), dtype=float).T, cmap="viridis")
        axes.set_xlabel(run.axes[0].label or "", fontsize=8)
        axes.set_ylabel(run.axes[1].label or "", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.tick_params(labelsize=7)
    return _png(figure)


def _trend_svg(runs: Sequence[int], values: Sequence[float], this_run: int) -> str:
    """A value's recent trend as a small inline SVG line (the run itself a dot)."""
    width, height, pad = 220.0, 48.0, 4.0
    xs = np.asarray(runs, dtype=float)
    ys = np.asarray(values, dtype=float)
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size < 2:
        return "—"
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = float(ys.min()), float(ys.max())
    sx = (width - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (height - 2 * pad) / ((y1 - y0) or 1.0)
    px = pad + (xs - x0) * sx
    py = height - pad - (ys - y0) * sy
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px, py, strict=True))
    dot = ""
    if this_run in runs and np.isfinite(values[list(runs).index(this_run)]):
        i = int(np.flatnonzero(xs == this_run)[0])
        dot = f"<circle cx='{px[i]:.1f}' cy='{py[i]:.1f}' r='3' fill='#D55E00'/>"
    return (
        f"<svg class='trend' width='{width:.0f}' height='{height:.0f}' role='img'>"
        f"<polyline points='{points}' fill='none' stroke='#0072B2' stroke-width='1.5'/>{dot}"
        f"<title>{y0:.4g} to {y1:.4g} over runs {int(x0)} to {int(x1)}</title></svg>"
    )


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def run_report(session: Session, *, run_id: int, now: dt.datetime | None = None) -> str:
    """The run's report as one HTML document.

    Raises:
        NotFoundError: no such run.
    """
    run = queries.get_run(session, run_id=run_id)
    e = html.escape
    state = certification_of(run.status, run.certification)
    choice = choose_reference(session, run_id=run_id)
    stages = queries.run_stage_qualities(session, run_ids=[run_id]).get(run_id, {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Run {run_id}: DQM report</title><style>{_STYLE}</style></head><body>",
        f"<h1>Run {run_id}</h1>",
        f"<p class='muted'>DQM report written {format_time(now or utcnow())} UTC</p>",
        _table(
            [
                ["type", e(run.run_type)],
                ["status", e(str(run.status))],
                [
                    "start, end (UTC)",
                    f"{format_time(run.start_time)} · {format_time(run.end_time)}",
                ],
                ["events, files", f"{run.n_events or 0:,} · {run.n_files or 0}"],
                ["quality", _badge(str(run.quality) if run.quality else None)],
                [
                    "per stage",
                    " ".join(f"{e(stage)} {_badge(str(q))}" for stage, q in stages.items()) or "—",
                ],
                ["sign-off", e(describe(state, run.verdict)) or "not open yet"],
                [
                    "reference",
                    f"{choice.run_id if choice.run_id is not None else 'none'}: {e(choice.reason)}",
                ],
                ["comment", e(run.comment or "")],
            ],
            ["", ""],
        ),
    ]

    results = queries.check_results(session, run_id=run_id)
    latest: dict[str, Any] = {}
    for row in results:
        if row.check_name not in latest or latest[row.check_name].version < row.version:
            latest[row.check_name] = row
    frames: dict[str, str] = {}
    for row in latest.values():
        target = (row.details or {}).get("histogram")
        if target and (target not in frames or row.quality == Quality.BAD):
            frames[target] = str(row.quality)
    parts.append("<h2>Checks</h2>")
    parts.append(
        _table(
            [
                [
                    e(r.stage),
                    e(r.check_name),
                    f"v{r.version}",
                    _badge(str(r.quality)),
                    e(r.sentence),
                ]
                for r in sorted(latest.values(), key=lambda r: (r.stage, r.check_name))
            ],
            ["stage", "check", "version", "quality", "why"],
        )
        if latest
        else "<p>No check has judged this run.</p>"
    )

    parts.append("<h2>Histograms</h2><div class='figures'>")
    stored = {(h.stage, h.name): h for h in queries.histogram_rows(session, run_id=run_id)}
    reference_rows = (
        {(h.stage, h.name): h for h in queries.histogram_rows(session, run_id=choice.run_id)}
        if choice.run_id is not None
        else {}
    )
    drawn = 0
    for stage_name in KEY_HISTOGRAMS:
        histogram = stored.get(stage_name)
        if histogram is None:
            continue
        reference = reference_rows.get(stage_name)
        label = "/".join(stage_name)
        image = _histogram_figure(
            queries.load_histogram(histogram),
            queries.load_histogram(reference) if reference is not None else None,
            label,
        )
        colour = _COLOURS.get(frames.get(label, ""), "#ddd")
        parts.append(
            f"<div class='figure' style='border-color:{colour}'>{image}"
            f"<p>{e(histogram.title or stage_name[1])}</p></div>"
        )
        drawn += 1
    parts.append("</div>" if drawn else "<p>No histogram stored yet.</p></div>")

    parts.append("<h2>Analyses</h2>")
    analysis_rows = []
    for result in queries.analysis_results(session, run_id=run_id, limit=None):
        for value in result.values:
            trend = queries.analysis_trend_columns(
                session,
                analysis=result.analysis,
                version=result.version,
                variables=[value.variable],
                run_types=[run.run_type],
                max_run=run_id,
            )
            runs = list(trend["run_id"][-TREND_RUNS:])
            values = list(trend["value"][-TREND_RUNS:])
            error = f" ± {value.error:.4g}" if value.error is not None else ""
            analysis_rows.append(
                [
                    e(f"{result.analysis} v{result.version}"),
                    e(value.variable),
                    f"{value.value:.6g}{error} {e(value.unit)}",
                    _trend_svg(runs, values, run_id),
                ]
            )
    parts.append(
        _table(analysis_rows, ["analysis", "variable", "value", f"last {TREND_RUNS} runs"])
        if analysis_rows
        else "<p>No analysis result.</p>"
    )

    parts.append("<h2>PMT changes</h2>")
    pmt = latest.get("pmt_classes")
    if pmt is not None:
        details = pmt.details or {}
        lines = [f"<p>{_badge(str(pmt.quality))} {e(pmt.sentence)}</p>"]
        for name in ("new_dead", "new_hot", "new_noisy"):
            ids = details.get(name)
            if ids:
                shown = ", ".join(str(i) for i in list(ids)[:200])
                lines.append(f"<p>{e(name.replace('_', ' '))}: {e(shown)}</p>")
        parts.append("".join(lines))
    else:
        parts.append("<p>The PMT classes were not judged.</p>")
    found = queries.pmt_changes(session, run_id=run_id)
    if found is not None:
        current, previous, changes = found
        classes = f"{current.n_dead} dead, {current.n_hot} hot, {current.n_noisy} noisy"
        if previous is None or changes is None:
            parts.append(f"<p>Stored classes: {classes}; no earlier {e(run.run_type)} run.</p>")
        else:
            rows = [
                [e(change), str(len(ids)), e(pmtstatus.format_pmt_ids(ids, 40))]
                for change, ids in (
                    ("newly dead", changes.newly_dead),
                    ("newly hot", changes.newly_hot),
                    ("newly noisy", changes.newly_noisy),
                    ("recovered", changes.recovered),
                )
            ]
            parts.append(
                f"<p>Stored classes: {classes}; changes since run {previous.run_id}:</p>"
                + _table(rows, ["change", "PMTs", "ids"])
            )
    mask = queries.pmt_mask_for_run(session, run_id=run_id)
    parts.append(
        f"<p>PMT mask version {mask.version} (from run {mask.valid_from_run}): {mask.n_masked} "
        "PMT(s) left out of the reconstruction.</p>"
        if mask is not None
        else "<p>No PMT mask: the reconstruction used every PMT.</p>"
    )

    parts.append("<h2>Processing</h2>")
    files = queries.files_of_run(session, run_id=run_id)
    parts.append(
        _table(
            [
                [str(f.seq), e(f.uri.rsplit("/", 1)[-1]), e(str(f.state)), f"{f.n_events or 0:,}"]
                for f in files
            ],
            ["seq", "file", "state", "events"],
        )
        if files
        else "<p>No file announced.</p>"
    )
    jobs: dict[str, int] = {}
    for job in queries.list_jobs(session, run_id=run_id, limit=None):
        jobs[f"{job.kind} {job.state}"] = jobs.get(f"{job.kind} {job.state}", 0) + 1
    parts.append(
        "<p>Jobs: " + e(", ".join(f"{k}: {n}" for k, n in sorted(jobs.items())) or "none") + "</p>"
    )

    parts.append("<h2>Provenance</h2>")
    merged = next(iter(stored.values()), None)
    provenance = dict(merged.provenance or {}) if merged is not None else {}
    parts.append(
        _table([[e(str(k)), e(str(v))] for k, v in sorted(provenance.items())], ["", ""])
        if provenance
        else "<p>No merged histograms: nothing to trace.</p>"
    )
    parts.append("</body></html>")
    return "".join(parts)
