"""Views of the dashboard: ``pn.viewable.Viewer`` components that read the state classes of
:mod:`app.state` and never query the database."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend for the options below
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import HTMLTemplateFormatter, NumberFormatter
from holoviews.operation.datashader import rasterize

from app.eventsview import EventDisplay
from app.pmthistoryview import PmtHistoryView
from app.pmtmap import PmtMap
from app.source import RunAnalysis, RunCertification, RunChecks, StoredHistogram, utc
from app.state import RUN_TABS, JobsState, RecentRuns, RunState
from dqm.analyses.api import unit_suffix
from dqm.checks.quality import Quality, worst
from dqm.pmtclass import DEFAULT_CUTS
from dqm.runs import COMMENT_MAX_CHARS

#: Colours of the run statuses (colour-blind-safe palette).
STATUS_COLOURS = {
    "Data Taking": "#56B4E9",
    "Rec Running": "#F0E442",
    "Partly Completed": "#E69F00",
    "All Completed": "#009E73",
    "Failed": "#D55E00",
}


#: Colours of the qualities (colour-blind-safe; TooFew and Unknown grey and purple, never green).
QUALITY_COLOURS = {
    "Good": "#009E73",
    "Warning": "#E69F00",
    "Bad": "#D55E00",
    "TooFew": "#BBBBBB",
    "Unknown": "#CC79A7",
}
#: The stages' names on the run page.
STAGE_TITLES = {
    "calib": "Calib",
    "rec": "Rec",
    "pmt": "PMT",
    "analyses": "Analyses",
    "processing": "Processing",
}
#: The run page's tabs (RUN_TABS) as their headers say.
TAB_TITLES = {
    "base": "Base",
    "calib": "Calib",
    "rec": "Rec",
    "pmt": "PMT info",
    "events": "Events",
    "analyses": "Analyses",
    "checks": "Checks",
    "certification": "Certification",
}
#: The tab that shows each stage.
STAGE_TABS = {
    "calib": "calib",
    "rec": "rec",
    "pmt": "pmt",
    "analyses": "analyses",
    "processing": "base",
}


def quality_badge(quality: str | None, label: str = "") -> str:
    """A quality as a coloured badge with its word (HTML): never colour alone."""
    if not quality:
        return (
            "<span class='quality-badge quality-none' style='border:1px solid #999;"
            f"padding:1px 6px;border-radius:4px'>{html.escape(label)}not judged</span>"
        )
    colour = QUALITY_COLOURS.get(quality, "#DDDDDD")
    return (
        f"<span class='quality-badge quality-{html.escape(quality.lower())}' "
        f"style='background:{colour};color:black;padding:1px 6px;border-radius:4px'>"
        f"{html.escape(label)}{html.escape(quality)}</span>"
    )


#: Height of a row of the runs table, and of its header and footer together, in pixels (Panel's
#: default Tabulator theme).
TABLE_ROW_PX = 34
TABLE_CHROME_PX = 85


def _target_title(target: str) -> str:
    kind, _, what = target.partition(":")
    return {"histogram": f"histogram {what}", "pmt": f"PMT {what}"}.get(kind, "the run")


def comments_html(comments: pd.DataFrame, target: str | None = None, prefix: str = "") -> str:
    """A run's comments as threads (replies indented under what they answer), as text: whatever
    a comment holds is escaped, never rendered. Only those on ``target`` if given, or on targets
    starting with ``prefix``."""
    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in comments.to_dict("records")
    ]
    if target is not None:
        rows = [r for r in rows if r["target"] == target]
    elif prefix:
        rows = [r for r in rows if str(r["target"]).startswith(prefix)]
    if not rows:
        return ""
    shown = {r["id"] for r in rows}
    children: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent"] if pd.notna(row["parent"]) and row["parent"] in shown else None
        children.setdefault(parent, []).append(row)
    parts: list[str] = []

    def render(row: dict[str, Any], depth: int) -> None:
        parts.append(
            f"<div class='comment' data-id='{int(row['id'])}' style='margin:4px 0 4px "
            f"{1.5 * depth}em;padding:4px 8px;border-left:3px solid #56B4E9;background:#F7F9FB'>"
            f"<small><b>{html.escape(str(row['user']))}</b> ({html.escape(str(row['role']))}) · "
            f"{utc(row['at'])} UTC · on {html.escape(_target_title(str(row['target'])))} · "
            f"#{int(row['id'])}</small><div style='white-space:pre-wrap'>"
            f"{html.escape(str(row['text']))}</div></div>"
        )
        for child in children.get(row["id"], []):
            render(child, depth + 1)

    for top in children.get(None, []):
        render(top, 0)
    return "<div class='comments'>" + "".join(parts) + "</div>"


def tab_badges(checks: RunChecks | None) -> dict[str, str]:
    """The quality badge of each tab of the run page: a stage's on its tab (processing's on
    Base), the worst where two stages share one, and the run's on Checks."""
    if checks is None:
        return {}
    by_tab: dict[str, list[Quality]] = {}
    for stage, quality in checks.stages.items():
        by_tab.setdefault(STAGE_TABS.get(stage, "checks"), []).append(Quality(quality))
    badges = {tab: str(worst(qualities)) for tab, qualities in by_tab.items()}
    if checks.quality is not None:
        badges["checks"] = checks.quality
    return badges


def tab_badges_css(checks: RunChecks | None, certification: RunCertification | None = None) -> str:
    """A stylesheet that writes each tab's quality badge after its title, and the run's sign-off
    state on the Certification tab (Bokeh's tab titles are plain text: the badges are drawn by
    CSS, and follow the checks and the decisions as they change)."""
    rules = []
    badges = {tab: (q, QUALITY_COLOURS.get(q, "#DDD")) for tab, q in tab_badges(checks).items()}
    if certification is not None and certification.description:
        verdict = certification.verdict
        colour = QUALITY_COLOURS.get(verdict, "#DDD") if verdict else "#DDD"
        badges["certification"] = (certification.description, colour)
    for tab, (quality, colour) in badges.items():
        index = RUN_TABS.index(tab) + 1
        rules.append(
            f'.bk-tab:nth-child({index})::after {{ content: "{quality}"; margin-left: 6px; '
            f"padding: 0 6px; border-radius: 8px; background: {colour}; color: black; "
            "font-size: 80%; }"
        )
    return "\n".join(rules)


def _text(message: str | None) -> str:
    """A message parameter as an alert's text (None as nothing)."""
    return message or ""


def _status_cell() -> HTMLTemplateFormatter:
    """The status cell: the status on its colour (the colour is a hidden column of the table).

    A new formatter for every table: the table watches it, so one shared by all sessions would
    keep every session's table, and everything it refers to, alive for ever."""
    return HTMLTemplateFormatter(
        template='<div style="background:<%= status_colour %>;color:black;padding:0 4px">'
        "<%= value %></div>"
    )


def _quality_cell() -> HTMLTemplateFormatter:
    """The quality cell: the quality on its colour (a hidden column); a new one per table."""
    return HTMLTemplateFormatter(
        template='<div style="background:<%= quality_colour %>;color:black;padding:0 4px">'
        "<%= value %></div>"
    )


#: Colours of an analysis's state on a run (from its latest job).
ANALYSIS_STATUS_COLOURS = {
    "done": "#009E73",
    "stored": "#009E73",
    "waiting": "#F0E442",
    "running": "#56B4E9",
    "failed": "#D55E00",
    "to check": "#E69F00",
}


def tag_chips(tags: tuple[str, ...]) -> str:
    """A run's tags as chips (HTML), or a word saying it has none."""
    if not tags:
        return "<span style='color:#666'>No tags.</span>"
    return " ".join(
        "<span class='run-tag' style='background:#E8EEF7;border:1px solid #9DB3D6;"
        f"border-radius:10px;padding:1px 8px;margin-right:4px'>{html.escape(tag)}</span>"
        for tag in tags
    )


def _lineage_value(value: Any) -> str:
    """A lineage entry for display: lists as their length and first items."""
    if isinstance(value, list | tuple):
        shown = ", ".join(str(v) for v in value[:3])
        return f"{len(value)}: {shown}{', …' if len(value) > 3 else ''}"
    return str(value)


def variables_table(analysis: RunAnalysis) -> str:
    """The variables of a run's analysis result as a Markdown table: value ± error and unit,
    meaning, expected band (values outside it marked)."""
    lines = ["| variable | value | meaning | expected |", "|---|---|---|---|"]
    for v in analysis.values:
        error = f" ± {v.error:.4g}" if v.error is not None else ""
        value = f"{v.value:.6g}{error}{html.escape(unit_suffix(v.unit))}"
        if v.in_band is False:
            value = f"**{value}** ⚠"
        expected = f"{v.expected[0]:g} to {v.expected[1]:g}" if v.expected else ""
        lines.append(f"| {v.variable} | {value} | {html.escape(v.meaning)} | {expected} |")
    return "\n".join(lines)


class _BuiltOnce(pn.viewable.Viewer):
    """A view whose layout is built on first display by ``_build`` and shown again afterwards:
    opening another run, tab or page updates its parts and never builds it again (nor adds
    another watcher on the state)."""

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        raise NotImplementedError


class RecentRunsView(_BuiltOnce):
    """The recent-runs page: search mode, filters, the colour-coded table; a click opens a run."""

    state = param.ClassSelector(class_=RecentRuns, doc="The runs and their filters.")
    on_select = param.Callable(default=None, doc="Called with a run id when a row is clicked.")

    @property
    def _state(self) -> RecentRuns:
        """:attr:`state`, which the app always gives (param types the parameter as optional)."""
        assert self.state is not None, "RecentRunsView shows a RecentRuns"
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        self._table = pn.widgets.Tabulator(
            self._frame(),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            pagination="local",
            page_size=25,
            selectable=False,
            hidden_columns=["status_colour", "quality_colour"],
            formatters={
                "Run": NumberFormatter(format="0"),
                "Status": _status_cell(),
                "Quality": _quality_cell(),
                "Events": NumberFormatter(format="0,0"),
                "Files": NumberFormatter(format="0"),
                "New comments": HTMLTemplateFormatter(
                    template="<% if (value > 0) { %><b>💬 <%= value %> new</b><% } %>"
                ),
            },
        )
        self._keep_height()
        self._table.on_click(self._clicked)
        state.param.watch(lambda *_: self._update(), ["runs"])
        controls = pn.Row(
            pn.widgets.RadioButtonGroup.from_param(state.param.mode, color="primary"),
            pn.widgets.IntInput.from_param(state.param.n_runs, label="Runs", width=100),
            pn.widgets.FloatInput.from_param(state.param.days, label="Days", width=100),
            pn.widgets.TextInput.from_param(
                state.param.search, label="Run number", placeholder="e.g. 10004", width=140
            ),
        )
        filters = pn.Row(
            pn.widgets.MultiChoice.from_param(state.param.statuses, label="Status", width=300),
            pn.widgets.MultiChoice.from_param(state.param.run_types, label="Run type", width=220),
            pn.widgets.MultiChoice.from_param(state.param.qualities, label="Quality", width=240),
            pn.widgets.MultiChoice.from_param(
                state.param.certifications, label="Sign-off", width=240
            ),
        )
        message = pn.pane.Alert(
            pn.bind(_text, state.param.message),
            alert_type="warning",
            visible=pn.bind(bool, state.param.message),
        )
        good_runs = pn.widgets.FileDownload(
            callback=state.good_runs_csv,
            filename="good_runs.csv",
            label="Good-run list (CSV)",
            color="light",
            width=200,
            css_classes=["good-runs-download"],
        )
        return pn.Column(
            pn.Row(controls, good_runs, sizing_mode="stretch_width"),
            filters,
            message,
            self._table,
            sizing_mode="stretch_width",
        )

    def _frame(self) -> pd.DataFrame:
        runs = self._state.runs.copy()
        runs["status_colour"] = [STATUS_COLOURS.get(str(v), "#FFFFFF") for v in runs["status"]]
        runs["quality_colour"] = [QUALITY_COLOURS.get(str(v), "#FFFFFF") for v in runs["quality"]]
        for column in ("start_time", "end_time"):
            runs[column] = [utc(v) if pd.notna(v) else "" for v in runs[column]]
        return runs.rename(
            columns={
                "run_id": "Run",
                "run_type": "Type",
                "status": "Status",
                "quality": "Quality",
                "certification": "Sign-off",
                "new_comments": "New comments",
                "start_time": "Start (UTC)",
                "end_time": "End (UTC)",
                "n_events": "Events",
                "n_files": "Files",
            }
        )

    def _update(self) -> None:
        frame, shown = self._frame(), self._table.value
        if (
            shown is not None
            and len(frame) == len(shown) > 0
            and list(frame.columns) == list(shown.columns)
            and frame.index.equals(shown.index)
        ):
            # As many runs as before (the usual refresh: a status changed, or the newest runs
            # moved up by one): the changed rows are patched in place. A new value would make
            # the browser build the table again, and the page would jump back to its top.
            new, old = frame.astype(object), shown.astype(object)
            changed = (new.ne(old) & ~(new.isna() & old.isna())).any(axis=1)
            if changed.any():
                self._table.patch(frame[changed])
        else:
            self._table.value = frame
            self._keep_height()

    def _keep_height(self) -> None:
        """The table's height for the rows of a page, kept as its least height: Tabulator
        empties and refills the table on every new value (and on a patch when the reader has
        sorted it), and without this the page would shrink for a moment and the browser would
        scroll it back to the top."""
        rows = min(len(self._table.value), self._table.page_size or 0)
        self._table.min_height = TABLE_CHROME_PX + rows * TABLE_ROW_PX

    def _clicked(self, event: Any) -> None:
        if self.on_select is not None and event.row is not None:
            self.on_select(int(self._table.value.iloc[event.row]["Run"]))


def histogram_plot(
    histogram: StoredHistogram, reference: StoredHistogram | None, log: bool
) -> hv.Element:
    """A 1-D histogram as steps (with the reference run's, scaled to the same entries) or a 2-D
    one as an image."""
    h = histogram.histogram
    options = {
        "title": histogram.title,
        "responsive": True,
        "height": 280,
        "tools": ["hover"],
        "shared_axes": False,  # each plot its own ranges (they share the name "entries")
    }
    if h.ndim == 2:
        x, y = h.axes[0].edges, h.axes[1].edges
        values = h.values().T.astype(float)
        if log:
            values = np.where(values > 0, np.log10(np.maximum(values, 1e-12)), np.nan)
        return hv.QuadMesh(
            (x, y, values), kdims=[h.axes[0].label or "x", h.axes[1].label or "y"]
        ).opts(cmap="viridis", colorbar=True, **options)
    edges = h.axes[0].edges
    values = h.values().astype(float)
    label = h.axes[0].label or histogram.name
    plots = [
        hv.Histogram((edges, values), kdims=[label], vdims=["entries"], label="run").opts(alpha=0.6)
    ]
    if reference is not None and reference.histogram.ndim == 1:
        ref = reference.histogram
        if ref.axes[0] == h.axes[0]:
            scale = values.sum() / ref.values().sum() if ref.values().sum() else 0.0
            plots.append(
                hv.Histogram(
                    (edges, ref.values() * scale),
                    kdims=[label],
                    vdims=["entries"],
                    label="reference",
                ).opts(fill_alpha=0, line_color="black", line_dash="dashed")
            )
    overlay = hv.Overlay(plots).opts(logy=log, legend_position="top_right", **options)
    return overlay


def framed(pane: pn.viewable.Viewable, quality: str | None) -> pn.viewable.Viewable:
    """A plot framed in the colour of the check that looks at it (no frame: no check), as CMS and
    Belle II colour their canvases; the class ``check-<quality>`` says it to a test or a style."""
    if not quality:
        return pane
    colour = QUALITY_COLOURS.get(quality, "#999")
    return pn.Column(
        pane,
        styles={"border": f"4px solid {colour}", "border-radius": "4px"},
        css_classes=[f"check-{quality.lower()}"],
        sizing_mode="stretch_width",
    )


def _target_link(run_id: int | None, target: str) -> str:
    """What a check looks at, as a link to where the run page shows it."""
    if not target:
        return ""
    first = target.split("/", 1)[0]
    tab = first if first in ("calib", "rec") else "analyses"
    return f"<a href='?page=run&run={run_id}&tab={tab}'>{html.escape(target)}</a>"


#: Axis labels of the event columns (app.source.Source.run_events).
EVENT_LABELS = {
    "x_m": "x [m]",
    "y_m": "y [m]",
    "z_m": "z [m]",
    "rho2_m2": "ρ² [m²]",
    "r3": "(R / 17.7 m)³",
    "energy_mev": "visible energy [MeV]",
    "time_s": "time since run start [s]",
}


def event_density(events: pd.DataFrame, x: str, y: str, log: bool) -> hv.DynamicMap:
    """Event density in (x, y), rasterised by Datashader at the plot's resolution (and again on
    every zoom), so millions of events draw as fast as thousands."""
    points = hv.Points(
        events[[x, y]],
        kdims=[hv.Dimension(x, label=EVENT_LABELS[x]), hv.Dimension(y, label=EVENT_LABELS[y])],
    )
    return rasterize(points).opts(
        cmap="viridis",
        cnorm="log" if log else "eq_hist",
        colorbar=True,
        responsive=True,
        height=320,
        tools=["hover"],
        title=f"{EVENT_LABELS[y]} versus {EVENT_LABELS[x]}",
        shared_axes=False,
    )


class RunPage(_BuiltOnce):
    """A run: Base (status, times, files, provenance), Calib and Rec histograms, PMT info."""

    state = param.ClassSelector(class_=RunState, doc="The run shown.")
    tab: param.Selector[str] = param.Selector(objects=list(RUN_TABS), default="base", doc="Tab.")
    log_scale = param.Boolean(default=False, doc="Log scale on the histograms.")
    on_open = param.Callable(default=None, doc="Called with a run id to open another run.")
    on_try_cuts = param.Callable(
        default=None,
        doc="Called with the run type and the map's cuts to try them on past runs (the Check "
        "editor).",
    )

    @property
    def _state(self) -> RunState:
        """:attr:`state`, which the app always gives (param types the parameter as optional)."""
        assert self.state is not None, "RunPage shows a RunState"
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        # A tab's content is built the first time the tab is shown: a run page opens on one tab,
        # and the others (histograms drawn, the PMT map, the event display) would cost the page
        # its first render for nothing.
        self._tab_builders: dict[str, Callable[[], Any]] = {
            "base": lambda: pn.Column(
                pn.panel(self._base),
                pn.panel(self._comments_section),
                sizing_mode="stretch_width",
            ),
            "calib": lambda: self._stage_panel("calib"),
            "rec": lambda: self._stage_panel("rec"),
            "pmt": lambda: pn.panel(self._pmt),
            "events": lambda: pn.panel(self._events),
            "analyses": lambda: pn.panel(self._analyses),
            "checks": lambda: pn.panel(self._checks),
            "certification": lambda: pn.panel(self._certification),
        }
        self._tab_holders = {
            tab: pn.Column(sizing_mode="stretch_width") for tab in self.param.tab.objects
        }
        self._tabs = pn.Tabs(
            *[(TAB_TITLES[tab], self._tab_holders[tab]) for tab in self.param.tab.objects],
            dynamic=True,
            sizing_mode="stretch_width",
        )
        self._tabs.stylesheets = [tab_badges_css(state.checks, state.certification)]
        state.param.watch(
            lambda _event: setattr(
                self._tabs, "stylesheets", [tab_badges_css(state.checks, state.certification)]
            ),
            ["checks", "certification"],
        )
        self._tabs.active = list(self.param.tab.objects).index(self.tab)
        self._fill_tab(self.tab)
        self._tabs.param.watch(self._tab_changed, "active")
        self.param.watch(self._tab_param_changed, "tab")
        download = pn.widgets.FileDownload(
            callback=self._root_file,
            filename=f"run{state.run_id}.root",
            label="Download ROOT file",
            color="light",
        )
        report = pn.widgets.FileDownload(
            callback=self._state.report,
            filename=f"run{state.run_id}.html",
            label="Run report (HTML)",
            color="light",
            css_classes=["run-report"],
        )

        def renamed(event: Any) -> None:
            download.filename = f"run{event.new}.root"
            report.filename = f"run{event.new}.html"

        state.param.watch(renamed, "run_id")
        toolbar = pn.Row(
            pn.widgets.Checkbox.from_param(self.param.log_scale, label="Log scale"),
            pn.widgets.IntInput.from_param(
                state.param.reference_run_id, label="Reference run", width=140
            ),
            download,
            report,
        )
        message = pn.pane.Alert(
            pn.bind(_text, state.param.message),
            alert_type="warning",
            visible=pn.bind(bool, state.param.message),
        )
        notice = pn.pane.Alert(
            pn.bind(_text, state.param.notice),
            alert_type="info",
            visible=pn.bind(bool, state.param.notice),
        )
        return pn.Column(
            message,
            notice,
            pn.panel(self._quality_header),
            toolbar,
            self._tabs,
            sizing_mode="stretch_width",
        )

    @param.depends("state.checks", "state.run_id", "state.certification")
    def _quality_header(self) -> pn.viewable.Viewable:
        """The run's quality, and each stage's as a badge that opens its tab; its sign-off."""
        checks = self._state.checks
        quality = checks.quality if checks is not None else None
        certification = self._state.certification
        sign_off = (
            f" · sign-off: {html.escape(certification.description)}"
            if certification is not None and certification.description
            else ""
        )
        parts: list[pn.viewable.Viewable] = [
            pn.pane.HTML(
                f"<b>Run {self._state.run_id}</b> · quality {quality_badge(quality)}{sign_off}",
                css_classes=["run-quality"],
                margin=(8, 10),
            )
        ]
        for stage, quality in checks.stages.items() if checks is not None else []:
            button = pn.widgets.Button(
                label=f"{STAGE_TITLES.get(stage, stage)}: {quality}",
                stylesheets=[
                    f":host .bk-btn {{ background: {QUALITY_COLOURS.get(quality, '#DDD')}; }}"
                ],
                css_classes=["stage-badge", f"stage-{stage}"],
                width=150,
                margin=(4, 4),
            )
            button.on_click(functools.partial(self._open_tab, STAGE_TABS.get(stage, "checks")))
            parts.append(button)
        return pn.Row(*parts, sizing_mode="stretch_width")

    def _open_tab(self, tab: str, _event: Any) -> None:
        self.tab = tab

    @param.depends("state.checks")
    def _checks(self) -> pn.viewable.Viewable:
        checks = self._state.checks
        if checks is None or checks.checks.empty:
            return pn.pane.Markdown(
                "No check has judged this run yet: its checks run after each merge of its files "
                "and again once its analyses are done."
            )
        run_id = self._state.run_id
        frame = checks.checks.copy()
        frame["quality_colour"] = [QUALITY_COLOURS.get(q, "#FFF") for q in frame["quality"]]
        frame["looks_at"] = [_target_link(run_id, t) for t in frame["looks_at"]]
        frame["reference_run"] = [
            f"<a href='?page=run&run={r}&tab=checks'>{int(r)}</a>" if pd.notna(r) else ""
            for r in frame["reference_run"]
        ]
        frame["evaluated"] = [utc(v) if pd.notna(v) else "" for v in frame["evaluated"]]
        frame["sentence"] = [html.escape(v) for v in frame["sentence"]]
        table = pn.widgets.Tabulator(
            frame.rename(
                columns={
                    "stage": "Stage",
                    "check": "Check",
                    "version": "v",
                    "quality": "Quality",
                    "sentence": "Why",
                    "looks_at": "Looks at",
                    "reference_run": "Reference",
                    "statistics": "Statistics",
                    "evaluated": "Evaluated (UTC)",
                }
            ),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            hidden_columns=["quality_colour"],
            formatters={
                "Quality": _quality_cell(),
                "Looks at": HTMLTemplateFormatter(template="<%= value %>"),
                "Reference": HTMLTemplateFormatter(template="<%= value %>"),
                "Why": HTMLTemplateFormatter(
                    template='<div style="white-space:normal"><%= value %></div>'
                ),
                "Statistics": NumberFormatter(format="0,0"),
            },
            widths={"Why": 520},
            css_classes=["checks-table"],
        )
        reference = (
            f"**Reference:** run {checks.reference_run}. {html.escape(checks.reference_reason)}"
            if checks.reference_run is not None
            else f"**Reference:** none. {html.escape(checks.reference_reason)}"
        )
        return pn.Column(
            pn.pane.Markdown(reference),
            self._reference_editor(),
            table,
            sizing_mode="stretch_width",
        )

    @param.depends("state.comments", "state.histograms")
    def _comments_section(self) -> pn.viewable.Viewable:
        """Every comment on the run (on it, its histograms and its PMTs) as threads, and the form
        to add one or reply (shifters and experts)."""
        state = self._state
        text = comments_html(state.comments)
        parts: list[pn.viewable.Viewable] = [
            pn.pane.Markdown("#### Comments"),
            pn.pane.HTML(text or "No comment yet.", sizing_mode="stretch_width"),
        ]
        if not state.may("comment"):
            if not state.actor.logged_in:
                parts.append(pn.pane.Markdown("[Log in](login) as a shifter to comment."))
            return pn.Column(*parts, sizing_mode="stretch_width")
        targets = {"the run": "run"}
        for stage, stored in state.histograms.items():
            for h in stored:
                targets[f"histogram {stage}/{h.name}"] = f"histogram:{stage}/{h.name}"
        targets["a PMT (give its id)"] = "pmt"
        on = pn.widgets.Select(label="On", options=targets, width=260, css_classes=["comment-on"])
        pmt = pn.widgets.IntInput(label="PMT id", value=0, width=110, css_classes=["comment-pmt"])
        replies: dict[str, int | None] = {"(a new thread)": None}
        for row in state.comments.to_dict("records"):
            replies[f"#{int(row['id'])} {row['user']}: {str(row['text'])[:40]}"] = int(row["id"])
        reply = pn.widgets.Select(
            label="Reply to", options=replies, width=300, css_classes=["comment-reply"]
        )
        box = pn.widgets.TextAreaInput(
            label="Comment",
            rows=2,
            max_length=COMMENT_MAX_CHARS,
            sizing_mode="stretch_width",
            css_classes=["comment-text"],
        )
        button = pn.widgets.Button(
            label="Add comment", color="primary", width=140, css_classes=["comment-add"]
        )

        def add(_event: Any) -> None:
            target = f"pmt:{pmt.value}" if on.value == "pmt" else on.value
            state.add_comment(box.value or "", target=target, parent_id=reply.value)

        button.on_click(add)
        parts.append(pn.Row(on, pmt, reply, sizing_mode="stretch_width"))
        parts.append(pn.Row(box, button, sizing_mode="stretch_width"))
        return pn.Column(*parts, sizing_mode="stretch_width")

    @param.depends("state.certification")
    def _certification(self) -> pn.viewable.Viewable:
        """The run's sign-off: its state, the form (a shifter's), certify or send back (an
        expert's), and every decision."""
        state = self._state
        certification = state.certification
        if certification is None:
            return pn.pane.Markdown("")
        if certification.state is None:
            return pn.pane.Markdown(
                f"Run {state.run_id} is not open for sign-off yet: it opens once the run is All "
                "Completed."
            )
        parts: list[pn.viewable.Viewable] = [
            pn.pane.HTML(
                f"<b>Sign-off:</b> {html.escape(certification.description)}",
                css_classes=["certification-state"],
                margin=(8, 10),
            )
        ]
        if certification.state in ("OPEN", "SIGNED_OFF") and state.may("sign_off"):
            parts.append(self._sign_off_form(certification))
        elif certification.state in ("OPEN", "SIGNED_OFF") and not state.actor.logged_in:
            parts.append(pn.pane.Markdown("[Log in](login) as a shifter to sign this run off."))
        if state.may("certify") and certification.state != "OPEN":
            parts.append(self._expert_decisions(certification.state))
        history = certification.decisions.copy()
        if not history.empty:
            history["at"] = [utc(v) for v in history["at"]]
            history["comment"] = [html.escape(c) for c in history["comment"]]
        parts += [
            pn.pane.Markdown("#### Decisions"),
            pn.widgets.Tabulator(
                history,
                show_index=False,
                disabled=True,
                sizing_mode="stretch_width",
                formatters={
                    "comment": HTMLTemplateFormatter(
                        template='<div style="white-space:normal"><%= value %></div>'
                    )
                },
                css_classes=["decisions-table"],
            )
            if not history.empty
            else pn.pane.Markdown("No decision yet."),
        ]
        return pn.Column(*parts, sizing_mode="stretch_width")

    def _sign_off_form(self, certification: RunCertification) -> pn.viewable.Viewable:
        choices: dict[str, pn.widgets.RadioButtonGroup] = {}
        rows: list[pn.viewable.Viewable] = []
        for stage, start in certification.form.items():
            automatic = certification.automatic.get(stage)
            choices[stage] = pn.widgets.RadioButtonGroup(
                options=["Good", "Bad"],
                value=start,
                button_type="default",
                css_classes=["sign-off-stage", f"sign-off-{stage}"],
                width=160,
            )
            rows.append(
                pn.Row(
                    pn.pane.HTML(f"<b>{STAGE_TITLES.get(stage, stage)}</b>", width=100),
                    choices[stage],
                    pn.pane.HTML(
                        f"automatic: {quality_badge(automatic)}" if automatic else "not judged",
                        margin=(5, 10),
                    ),
                )
            )
        comment = pn.widgets.TextAreaInput(
            label="Comment (what was seen, what was done)",
            rows=2,
            sizing_mode="stretch_width",
            css_classes=["sign-off-comment"],
        )
        button = pn.widgets.Button(
            label="Sign off", color="primary", width=140, css_classes=["sign-off"]
        )
        button.on_click(
            lambda _e: self._state.decide(
                "sign_off",
                comment.value or "",
                {stage: widget.value for stage, widget in choices.items()},
            )
        )
        return pn.Card(
            *rows,
            pn.Row(comment, button, sizing_mode="stretch_width"),
            title="Sign off (a Good or Bad decision per stage, from the automatic quality)",
            collapsible=False,
            sizing_mode="stretch_width",
        )

    def _expert_decisions(self, current: str | None) -> pn.viewable.Viewable:
        comment = pn.widgets.TextInput(
            label="Comment (the reason, to send the run back)",
            sizing_mode="stretch_width",
            css_classes=["certify-comment"],
        )
        buttons: list[pn.viewable.Viewable] = []
        if current == "SIGNED_OFF":
            certify = pn.widgets.Button(
                label="Certify", color="success", width=120, css_classes=["certify"]
            )
            certify.on_click(lambda _e: self._state.decide("certify", comment.value or ""))
            buttons.append(certify)
        reopen = pn.widgets.Button(label="Send back to sign-off", width=200, css_classes=["reopen"])
        reopen.on_click(lambda _e: self._state.decide("reopen", comment.value or ""))
        buttons.append(reopen)
        return pn.Row(comment, *buttons, sizing_mode="stretch_width")

    def _reference_editor(self) -> pn.viewable.Viewable:
        if not self._state.may("pin_reference_run"):
            return pn.Column()
        run_type = self._state.summary.run_type if self._state.summary else ""
        reference = pn.widgets.TextInput(
            label="Reference run (empty: lift the pin)", placeholder="e.g. 10003", width=220
        )
        comment = pn.widgets.TextInput(label="Why", placeholder="e.g. before the HV change")
        for_run = pn.widgets.Button(label="Pin for this run", width=160, align="end")
        for_type = pn.widgets.Button(label=f"Pin for all {run_type} runs", width=200, align="end")
        for_run.on_click(
            lambda _e: self._state.pin_reference(
                reference.value or "", for_type=False, comment=comment.value or ""
            )
        )
        for_type.on_click(
            lambda _e: self._state.pin_reference(
                reference.value or "", for_type=True, comment=comment.value or ""
            )
        )
        buttons = [for_run, for_type] if self._state.may("pin_reference_type") else [for_run]
        return pn.Row(reference, comment, *buttons, sizing_mode="stretch_width")

    def _root_file(self) -> Any:
        return self._state.root_file()

    def _tab_changed(self, event: Any) -> None:
        self._fill_tab(self.param.tab.objects[event.new])
        self.tab = self.param.tab.objects[event.new]

    def _fill_tab(self, tab: str) -> None:
        """Build a tab's content, once, when it is first shown."""
        holder = self._tab_holders[tab]
        if not holder.objects:
            holder.objects = [self._tab_builders[tab]()]

    def _stage_panel(self, stage: str) -> Any:
        state = self._state
        return pn.panel(
            pn.bind(
                self._stage,
                stage,
                self.param.log_scale,
                state.param.histograms,
                state.param.reference,
                state.param.checks,
                state.param.comments,
            )
        )

    @param.depends("tab", "state.summary", watch=True)
    def _events_shown(self) -> None:
        """The kept events are read when the Events tab is shown (and again after the run
        changed), not with every run page."""
        if self.tab == "events" and self._state.summary is not None:
            self._state.open_events()

    def _events(self) -> EventDisplay:
        if getattr(self, "_event_display", None) is None:
            assert self._state.kept_events is not None
            self._event_display = EventDisplay(state=self._state.kept_events)
            self._events_shown()
        return self._event_display

    def _tab_param_changed(self, event: Any) -> None:
        self._fill_tab(event.new)
        index = list(self.param.tab.objects).index(event.new)
        if self._tabs.active != index:
            self._tabs.active = index

    @param.depends("state.summary")
    def _base(self) -> pn.viewable.Viewable:
        s = self._state.summary
        if s is None:
            return pn.pane.Markdown("")
        status_colour = STATUS_COLOURS.get(s.status, "#ccc")
        n_files = s.n_files if s.n_files is not None else len(s.files)
        rows = [
            (
                "Status",
                f"<span style='background:{status_colour};padding:2px 6px'>{s.status}</span>",
            ),
            ("Run type", s.run_type),
            ("Start (UTC)", utc(s.start_time)),
            ("End (UTC)", utc(s.end_time) or "still taking data"),
            ("Events", f"{s.n_events:,}" if s.n_events is not None else "not yet known"),
            ("Files", f"{s.files_done} done of {n_files}"),
            ("Reconstruction", s.rec_method or "not yet chosen"),
            ("Sampling fraction", f"{s.sampling_fraction:g}"),
            (
                "Calibration version",
                s.calibration_version
                if s.calibration_version is not None
                else "nominal (none stored)",
            ),
            ("Comment", s.comment or ""),
        ]
        table = "\n".join(f"| {k} | {v} |" for k, v in rows)
        lines = "\n".join(f"- **{k}**: {v}" for k, v in s.provenance.items() if k != "input_files")
        return pn.Column(
            pn.pane.Markdown(f"## Run {s.run_id}"),
            pn.pane.HTML(tag_chips(s.tags), margin=(0, 10)),
            self._tags_editor(s.tags),
            pn.pane.Markdown(f"| | |\n|---|---|\n{table}"),
            self._comment_editor(s.comment or ""),
            pn.pane.Markdown("### Files"),
            pn.widgets.Tabulator(
                s.files, show_index=False, disabled=True, sizing_mode="stretch_width"
            ),
            pn.pane.Markdown(f"### Provenance of the merged histograms\n\n{lines or 'none yet'}"),
            sizing_mode="stretch_width",
        )

    def _stage(
        self,
        stage: str,
        log: bool,
        histograms: dict[str, list[StoredHistogram]],
        reference: dict[str, dict[str, StoredHistogram]],
        checks: RunChecks | None = None,
        comments: pd.DataFrame | None = None,
    ) -> pn.viewable.Viewable:
        stored = histograms.get(stage, [])
        if not stored:
            return pn.pane.Markdown(
                "No histograms yet: they appear as the run's files are processed."
            )
        refs = reference.get(stage, {})
        frames = checks.frames if checks is not None else {}
        notes = comments if comments is not None else pd.DataFrame(columns=["target"])
        plots = []
        for h in stored:
            plot: pn.viewable.Viewable = framed(
                pn.pane.HoloViews(
                    histogram_plot(h, refs.get(h.name), log), sizing_mode="stretch_width"
                ),
                frames.get(f"{stage}/{h.name}"),
            )
            on_it = comments_html(notes, target=f"histogram:{stage}/{h.name}") if len(notes) else ""
            if on_it:
                plot = pn.Column(plot, pn.pane.HTML(on_it), sizing_mode="stretch_width")
            plots.append(plot)
        grid = pn.GridBox(*plots, ncols=2, sizing_mode="stretch_width")
        if stage != "rec":
            return grid
        return pn.Column(grid, self._event_plots(log), sizing_mode="stretch_width")

    def _event_plots(self, log: bool) -> pn.viewable.Viewable:
        events = self._state.events()
        if events.empty:
            return pn.pane.Markdown("No reconstructed events stored for this run.")
        return pn.Column(
            pn.pane.Markdown(
                f"### Events ({len(events):,}, drawn by Datashader: zoom in for the detail)"
            ),
            pn.GridBox(
                pn.pane.HoloViews(event_density(events, "rho2_m2", "z_m", log)),
                pn.pane.HoloViews(event_density(events, "x_m", "y_m", log)),
                pn.pane.HoloViews(event_density(events, "r3", "energy_mev", log)),
                pn.pane.HoloViews(event_density(events, "time_s", "energy_mev", log)),
                ncols=2,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def _comment_editor(self, comment: str) -> pn.viewable.Viewable:
        if not self._state.may("comment"):
            return pn.Column()
        editor = pn.widgets.TextAreaInput(
            value=comment,
            label="Comment",
            max_length=COMMENT_MAX_CHARS,
            rows=2,
            sizing_mode="stretch_width",
        )
        save = pn.widgets.Button(label="Save comment", color="primary", width=140)
        save.on_click(lambda _event: self._state.set_comment(editor.value or ""))
        return pn.Row(editor, save, sizing_mode="stretch_width")

    def _tags_editor(self, tags: tuple[str, ...]) -> pn.viewable.Viewable:
        if not self._state.may("run_tags"):
            return pn.Column()
        editor = pn.widgets.TextInput(
            value=", ".join(tags),
            label="Tags (words separated by commas)",
            placeholder="e.g. messy, ramp_up",
            width=400,
        )
        save = pn.widgets.Button(label="Save tags", color="primary", width=140, align="end")
        save.on_click(lambda _event: self._state.set_tags(editor.value or ""))
        return pn.Row(editor, save)

    @param.depends("state.analyses")
    def _analyses(self) -> pn.viewable.Viewable:
        analyses = self._state.analyses
        if not analyses:
            return pn.pane.Markdown(
                "No analysis has run on this run yet: analyses run when its processing is "
                "complete (live ones after each merge)."
            )
        rows = []
        for name in dict.fromkeys(a.analysis for a in analyses):  # all versions side by side
            versions = [a for a in analyses if a.analysis == name]
            rows.append(
                pn.Row(
                    *(self._analysis_card(a) for a in versions),
                    sizing_mode="stretch_width",
                )
            )
        return pn.Column(*rows, sizing_mode="stretch_width")

    def _analysis_card(self, analysis: RunAnalysis) -> pn.viewable.Viewable:
        colour = ANALYSIS_STATUS_COLOURS.get(analysis.status, "#DDDDDD")
        parts: list[pn.viewable.Viewable] = [
            pn.pane.HTML(
                f"<span style='background:{colour};padding:2px 6px'>{analysis.status}</span> "
                f"{html.escape(analysis.description)}",
            )
        ]
        if analysis.error:
            parts.append(pn.pane.Alert(analysis.error, alert_type="danger"))
        if analysis.traceback:
            parts.append(
                pn.pane.HTML(
                    "<details><summary>Traceback</summary><pre style='font-size:0.8em'>"
                    f"{html.escape(analysis.traceback)}</pre></details>"
                )
            )
        if analysis.values:
            parts.append(pn.pane.Markdown(variables_table(analysis)))
        if analysis.lineage:
            lineage = "\n".join(
                f"- **{html.escape(str(k))}**: {html.escape(_lineage_value(v))}"
                for k, v in analysis.lineage.items()
            )
            parts.append(pn.pane.Markdown(f"**Lineage**\n\n{lineage}"))
        if analysis.result_id is not None:
            for figure in analysis.figures:
                parts.append(
                    pn.pane.PNG(
                        self._state.analysis_figure(analysis.result_id, figure),
                        alt_text=figure,
                        sizing_mode="scale_width",
                        max_width=600,
                    )
                )
            stored = f"stored {utc(analysis.created_at)} (UTC)"
        else:
            stored = "no result stored"
        title = f"{analysis.analysis} v{analysis.version} · {stored}"
        return pn.Card(
            *parts, title=title, collapsible=False, min_width=380, sizing_mode="stretch_width"
        )

    @param.depends("state.pmt")
    def _pmt(self) -> pn.viewable.Viewable:
        if self._state.pmt is None:
            return pn.pane.Markdown(
                f"Run {self._state.run_id} has no PMT statistics yet: they appear when its first "
                "file has been processed."
            )
        return pn.Column(
            pn.panel(self._cut_defaults),
            PmtMap(cuts=self._state.pmt),
            self._pmt_history_view(),
            pn.panel(self._pmt_comments),
            sizing_mode="stretch_width",
        )

    def _pmt_history_view(self) -> PmtHistoryView:
        """The changes, the PMT search and the masks: built once, whatever the run shown."""
        if getattr(self, "_pmt_history", None) is None:
            self._pmt_history = PmtHistoryView(state=self._state.pmt_history)
        return self._pmt_history

    @param.depends("state.comments")
    def _pmt_comments(self) -> pn.viewable.Viewable:
        text = comments_html(self._state.comments, prefix="pmt:")
        return pn.pane.HTML(f"<h4>Comments on PMTs</h4>{text}" if text else "")

    def _try_cuts(self) -> None:
        pmt, summary = self._state.pmt, self._state.summary
        if pmt is not None and summary is not None and self.on_try_cuts is not None:
            self.on_try_cuts(summary.run_type, pmt.hit_rate_cuts())

    @param.depends("state.cut_defaults")
    def _cut_defaults(self) -> pn.viewable.Viewable:
        saved = self._state.cut_defaults
        run_type = self._state.summary.run_type if self._state.summary else ""
        text = (
            f"The cuts start from the defaults of {run_type} runs, saved by {saved['saved_by']} "
            f"on {utc(saved['saved_at'])} (UTC)."
            if saved
            else f"The cuts start from the built-in defaults ({DEFAULT_CUTS.describe()})."
        )
        row: list[pn.viewable.Viewable] = [pn.pane.Markdown(text, sizing_mode="stretch_width")]
        if self.on_try_cuts is not None and self._state.pmt is not None:
            try_cuts = pn.widgets.Button(
                label="Try these cuts on past runs", css_classes=["try-cuts"], width=220
            )
            try_cuts.on_click(lambda _event: self._try_cuts())
            row.append(try_cuts)
        if self._state.may("edit_cuts"):
            button = pn.widgets.Button(
                label=f"Save these cuts as the default of {run_type} runs", color="primary"
            )
            button.on_click(lambda _event: self._state.save_cuts_as_default())
            row.append(button)
        return pn.Row(*row, sizing_mode="stretch_width")


class JobsView(_BuiltOnce):
    """Counts of jobs per state and the latest failures with their reasons."""

    state = param.ClassSelector(class_=JobsState, doc="The jobs' figures.")

    @property
    def _state(self) -> JobsState:
        """:attr:`state`, which the app always gives (param types the parameter as optional)."""
        assert self.state is not None, "JobsView shows a JobsState"
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        return pn.Column(
            pn.pane.Markdown(pn.bind(self._counts_text, state.param.counts)),
            pn.pane.Markdown("### Durations per stage (done jobs, seconds)"),
            pn.widgets.Tabulator.from_param(
                state.param.durations,
                show_index=False,
                disabled=True,
                formatters={
                    c: NumberFormatter(format="0.00") for c in ("median_s", "p95_s", "max_s")
                },
            ),
            pn.pane.Markdown("### Backfills of analyses"),
            pn.panel(self._backfills),
            pn.pane.Markdown("### Recent failures"),
            pn.pane.Alert(
                pn.bind(_text, state.param.notice),
                alert_type="info",
                visible=pn.bind(bool, state.param.notice),
            ),
            *self._retry_reason(),
            self._failures_table(),
            pn.pane.Markdown("### Changes made here (who and when)"),
            pn.widgets.Tabulator.from_param(
                state.param.changes, show_index=False, disabled=True, sizing_mode="stretch_width"
            ),
            sizing_mode="stretch_width",
        )

    @param.depends("state.backfills")
    def _backfills(self) -> pn.viewable.Viewable:
        backfills = self._state.backfills
        if backfills.empty:
            return pn.pane.Markdown("No backfill yet.")
        frame = backfills.copy()
        frame["created"] = [utc(v) if pd.notna(v) else "" for v in frame["created"]]
        return pn.widgets.Tabulator(
            frame,
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            formatters={
                "progress": {"type": "progress", "max": 100, "legend": True, "color": "#009E73"}
            },
        )

    def _retry_reason(self) -> list[pn.viewable.Viewable]:
        """The reason of a retry, for those who may retry (nothing on the page for the others)."""
        if not self._state.may("retry_job"):
            return []
        return [
            pn.widgets.TextInput.from_param(
                self._state.param.retry_reason,
                label="Reason for a retry (recorded; needed to reprocess a certified run)",
                placeholder="e.g. the file was copied again",
                width=520,
                css_classes=["retry-reason"],
            )
        ]

    def _failures_table(self) -> pn.widgets.Tabulator:
        table = pn.widgets.Tabulator.from_param(
            self._state.param.failures,
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            buttons={"retry": "↻ retry"} if self._state.may("retry_job") else {},
        )
        table.on_click(self._clicked)
        return table

    def _clicked(self, event: Any) -> None:
        if event.column != "retry" or not self._state.may("retry_job"):
            return
        self._state.retry(int(self._state.failures.iloc[event.row]["job"]))

    @staticmethod
    def _counts_text(counts: dict[str, int]) -> str:
        return "  ·  ".join(f"**{state}** {n:,}" for state, n in counts.items()) or "No jobs."


__all__ = [
    "QUALITY_COLOURS",
    "JobsView",
    "RecentRunsView",
    "RunPage",
    "framed",
    "histogram_plot",
    "quality_badge",
]
