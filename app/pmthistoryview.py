"""The PMT page's history part (a view of :class:`app.state.PmtHistoryState`; no query here):

- **Changes since the previous run of this type**: newly dead, hot and noisy PMTs, and recovered
  ones, counted and listed;
- **Find a PMT**: its hit rate, dark rate, gain and class over runs, and when it was first dead;
- **Mask**: the version valid for the run (the PMTs reconstruction leaves out), every version,
  and, for experts, a new version derived from the history or edited by hand.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend for the options below
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from app.source import utc
from app.state import PmtHistoryState
from dqm import pmtstatus

__all__ = ["PmtHistoryView"]

#: Colours of the statuses in the history (those of the PMT map; noisy in purple).
STATUS_COLOURS = {
    "dead": "#000000",
    "hot": "#D55E00",
    "noisy": "#CC79A7",
    "normal": "#009E73",
    "other": "#E69F00",
}


def _text(message: str | None) -> str:
    return message or ""


class PmtHistoryView(pn.viewable.Viewer):
    """Changes since the previous run, the PMT search and the masks of a run's PMT page."""

    state = param.ClassSelector(class_=PmtHistoryState, doc="The run's PMT history.")

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            self._layout = self._build()
        return self._layout

    @property
    def _state(self) -> PmtHistoryState:
        assert self.state is not None
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        search = pn.widgets.TextInput(
            label="Find a PMT (id)",
            placeholder="e.g. 4242",
            width=160,
            css_classes=["pmt-search"],
        )
        go = pn.widgets.Button(label="Show", width=80, css_classes=["pmt-search-go"])
        go.on_click(lambda _event: state.search(search.value or ""))
        search.param.watch(lambda _event: state.search(search.value or ""), "value")
        return pn.Column(
            pn.panel(self._changes),
            pn.pane.Markdown("### Find a PMT"),
            pn.Row(
                search,
                go,
                pn.widgets.Checkbox.from_param(
                    state.param.same_type_only, label="Runs of this type only"
                ),
            ),
            pn.pane.Alert(
                pn.bind(_text, state.param.message),
                alert_type="warning",
                visible=pn.bind(bool, state.param.message),
                css_classes=["pmt-search-message"],
            ),
            pn.panel(self._history),
            pn.panel(self._mask),
            sizing_mode="stretch_width",
        )

    @param.depends("state.changes")
    def _changes(self) -> pn.viewable.Viewable:
        summary = self._state.changes
        if summary is None:
            return pn.pane.Markdown(
                "The run has no PMT status yet: it is stored when the run's files are merged."
            )
        counts = ", ".join(f"{n} {name}" for name, n in summary.counts.items())
        head = f"### PMT classes\nIn run {summary.run_id}: {counts}."
        if summary.previous_run is None:
            return pn.pane.Markdown(
                head + f"\n\nNo earlier {summary.run_type} run has a PMT status to compare with."
            )
        changed = ", ".join(f"{n} {name}" for name, n in summary.change_counts.items())
        parts: list[pn.viewable.Viewable] = [
            pn.pane.Markdown(
                head + f"\n\n**Changes since run {summary.previous_run}** (the previous "
                f"{summary.run_type} run): {changed}.",
                css_classes=["pmt-changes"],
            )
        ]
        if len(summary.changes):
            table = pn.widgets.Tabulator(
                summary.changes,
                show_index=False,
                disabled=True,
                selectable=1,
                height=min(260, 40 + 28 * len(summary.changes)),
                width=420,
                titles={"change": "change", "pmt_id": "PMT", "type": "type"},
                css_classes=["pmt-changes-table"],
            )

            def chosen(event: Any) -> None:
                if event.new:
                    self._state.search(int(summary.changes["pmt_id"].iloc[event.new[0]]))

            table.param.watch(chosen, "selection")
            parts.append(table)
        return pn.Column(*parts, sizing_mode="stretch_width")

    @param.depends("state.history", "state.first_dead_run")
    def _history(self) -> pn.viewable.Viewable:
        state = self._state
        frame = state.history
        if state.pmt_id is None or frame.empty:
            return pn.Column()
        dead = (
            f"first seen dead in run {state.first_dead_run}"
            if state.first_dead_run is not None
            else "never seen dead"
        )
        last = frame.iloc[-1]
        head = pn.pane.Markdown(
            f"**PMT {state.pmt_id}**: {last['status'] or 'no status'} in run "
            f"{int(last['run_id'])}; {dead}.",
            css_classes=["pmt-history-head"],
        )
        plots = pn.Row(
            self._trend(frame, "hit_rate", "hit rate"),
            self._trend(frame, "dark_rate_hz", "dark rate [Hz]"),
            self._trend(frame, "signal_charge_pe", "charge per signal hit [PE]"),
            sizing_mode="stretch_width",
        )
        shown = frame.copy()
        shown["start_time"] = [utc(v) if pd.notna(v) else "" for v in shown["start_time"]]
        table = pn.widgets.Tabulator(
            shown.iloc[::-1],
            show_index=False,
            disabled=True,
            selectable=False,
            height=260,
            sizing_mode="stretch_width",
            titles={
                "run_id": "run",
                "run_type": "type",
                "start_time": "start (UTC)",
                "n_events": "events",
                "status": "class",
                "hit_rate": "hit rate",
                "dark_rate_hz": "dark rate [Hz]",
                "signal_charge_pe": "charge/hit [PE]",
                "gain_adc_per_pe": "gain [ADC/PE]",
                "calibration_version": "calibration",
            },
            formatters={
                "hit_rate": NumberFormatter(format="0.0000"),
                "dark_rate_hz": NumberFormatter(format="0,0"),
                "signal_charge_pe": NumberFormatter(format="0.000"),
                "gain_adc_per_pe": NumberFormatter(format="0.0"),
            },
            css_classes=["pmt-history-table"],
        )
        return pn.Column(head, plots, table, sizing_mode="stretch_width")

    @staticmethod
    def _trend(frame: pd.DataFrame, column: str, label: str) -> pn.viewable.Viewable:
        data = frame[["run_id", column, "status"]].dropna(subset=[column])
        data = data.assign(status=data["status"].fillna("no status"))
        line = hv.Curve(data, "run_id", (column, label)).opts(color="#777777")
        points = hv.Points(data, ["run_id", column], vdims=["status"]).opts(
            color="status",
            cmap={**STATUS_COLOURS, "no status": "#BBBBBB"},
            size=7,
            tools=["hover"],
            show_legend=False,
        )
        return pn.pane.HoloViews(
            (line * points).opts(
                height=240,
                responsive=True,
                xlabel="run",
                ylabel=label,
                xformatter="%d",
                yformatter="%.3g",
                shared_axes=False,
            ),
            sizing_mode="stretch_width",
            min_width=260,
        )

    @param.depends("state.mask", "state.masks", "state.notice")
    def _mask(self) -> pn.viewable.Viewable:
        state = self._state
        mask = state.mask
        if mask is None:
            text = "No mask is valid for this run: reconstruction uses every PMT."
        else:
            text = (
                f"Mask version {mask['version']} is valid for this run (from run "
                f"{mask['valid_from_run']} on): reconstruction leaves out {mask['n_masked']} "
                f"PMT(s), {mask['how']}, by {mask['created_by']} on {utc(mask['created_at'])} "
                f"(UTC). PMTs: {pmtstatus.format_pmt_ids(mask['pmts'], 30) or 'none'}."
            )
        parts: list[pn.viewable.Viewable] = [
            pn.pane.Markdown("### PMT mask"),
            pn.pane.Markdown(text, css_classes=["pmt-mask"]),
        ]
        if not state.masks.empty:
            frame = state.masks.copy()
            frame["created_at"] = [utc(v) for v in frame["created_at"]]
            parts.append(
                pn.Card(
                    pn.widgets.Tabulator(
                        frame.iloc[::-1],
                        show_index=False,
                        disabled=True,
                        selectable=False,
                        sizing_mode="stretch_width",
                        height=min(240, 40 + 28 * len(frame)),
                    ),
                    title=f"Every version ({len(frame)})",
                    collapsed=True,
                    sizing_mode="stretch_width",
                )
            )
        if state.notice:
            parts.append(
                pn.pane.Alert(
                    state.notice,
                    alert_type="danger" if state.notice.startswith("Not saved") else "success",
                    css_classes=["pmt-mask-notice"],
                )
            )
        if state.may("edit_masks"):
            parts.append(self._mask_forms())
        return pn.Column(*parts, sizing_mode="stretch_width")

    def _mask_forms(self) -> pn.viewable.Viewable:
        state = self._state
        consecutive = pn.widgets.IntInput(
            label="Dead in runs", value=3, start=1, end=1000, width=120
        )
        derive_comment = pn.widgets.TextInput(label="Comment", width=300)
        derive = pn.widgets.Button(
            label="Derive from the history", color="primary", css_classes=["mask-derive"]
        )
        derive.on_click(
            lambda _event: state.derive_mask(
                int(consecutive.value or 0), derive_comment.value or ""
            )
        )
        valid_from = pn.widgets.IntInput(
            label="Valid from run", value=state.run_id, start=0, width=140
        )
        add = pn.widgets.TextInput(
            label="Mask PMTs", placeholder="17, 100-120", width=200, css_classes=["mask-add"]
        )
        remove = pn.widgets.TextInput(
            label="Use again", placeholder="4242", width=200, css_classes=["mask-remove"]
        )
        comment = pn.widgets.TextInput(label="Why", width=300, css_classes=["mask-comment"])
        save = pn.widgets.Button(label="Save a new version", css_classes=["mask-save"])
        save.on_click(
            lambda _event: state.edit_mask(
                valid_from.value, add.value or "", remove.value or "", comment.value or ""
            )
        )
        return pn.Card(
            pn.pane.Markdown(
                "A new version is valid from its run on; files processed later use it, those "
                "processed already keep theirs (retry them to reprocess). The derived version "
                "masks the PMTs dead in each of the latest runs of this type up to this one, and "
                "is valid from the next run."
            ),
            pn.Row(consecutive, derive_comment, derive),
            pn.Row(valid_from, add, remove),
            pn.Row(comment, save),
            title="New mask version (experts)",
            collapsed=True,
            sizing_mode="stretch_width",
            css_classes=["mask-forms"],
        )
