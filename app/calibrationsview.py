"""The Calibrations page: every version (valid from which run, derived from which laser run, by
whom, when), a version's gain and time-offset maps on the Aitoff projection with their
distributions, the PMTs that moved against another version, and the mean constants per PMT type
over the versions. A view of :class:`app.state.CalibrationsState`; no query here."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from app.source import utc
from app.state import CalibrationsState

__all__ = ["CalibrationsView"]


def _text(message: str | None) -> str:
    return message or ""


_UNITS = {"gain": "gain (ADC counts per PE)", "offset_ns": "time offset (ns)"}


class CalibrationsView(pn.viewable.Viewer):
    """The Calibrations page."""

    state = param.ClassSelector(class_=CalibrationsState, doc="The calibrations.")

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            self._layout = self._build()
        return self._layout

    @property
    def _state(self) -> CalibrationsState:
        assert self.state is not None
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        return pn.Column(
            pn.pane.Markdown("## Calibrations"),
            pn.pane.Alert(
                pn.bind(_text, state.param.message),
                alert_type="info",
                visible=pn.bind(bool, state.param.message),
            ),
            pn.panel(self._versions),
            pn.Row(
                pn.widgets.RadioButtonGroup.from_param(state.param.quantity, color="primary"),
                pn.panel(self._choices),
            ),
            pn.panel(self._maps),
            pn.panel(self._moved),
            pn.panel(self._history),
            sizing_mode="stretch_width",
        )

    @param.depends("state.versions")
    def _versions(self) -> pn.viewable.Viewable:
        frame = self._state.versions.copy()
        if frame.empty:
            return pn.Column()
        frame["created_at"] = [utc(v) if pd.notna(v) else "" for v in frame["created_at"]]
        table = pn.widgets.Tabulator(
            frame,
            show_index=False,
            disabled=True,
            selectable=False,
            sizing_mode="stretch_width",
            formatters={
                c: NumberFormatter(format="0.000")
                for c in frame.columns
                if "_" in c and c[:4] in ("gain", "offs")
            },
            css_classes=["calibrations-table"],
        )
        table.on_click(self._clicked)
        return table

    def _clicked(self, event: Any) -> None:
        if event.row is not None and event.row < len(self._state.versions):
            self._state.version = int(self._state.versions.iloc[event.row]["version"])

    @param.depends("state.versions", "state.version", "state.other")
    def _choices(self) -> pn.viewable.Viewable:
        state = self._state
        known = [int(v) for v in state.versions["version"]] if not state.versions.empty else []
        if not known:
            return pn.Column()
        version = pn.widgets.Select(label="Version", options=known, value=state.version, width=120)
        other = pn.widgets.Select(
            label="Compared with",
            options={"(none)": None, **{str(v): v for v in known}},
            value=state.other,
            width=140,
        )
        version.param.watch(lambda e: setattr(state, "version", e.new), "value")
        other.param.watch(lambda e: setattr(state, "other", e.new), "value")
        return pn.Row(version, other)

    @param.depends("state.constants", "state.quantity")
    def _maps(self) -> pn.viewable.Viewable:
        state = self._state
        constants = state.constants
        if constants.empty:
            return pn.Column()
        quantity = state.quantity
        fitted = constants[constants["gain"] > 0]
        points = hv.Points(
            fitted, ["aitoff_x", "aitoff_y"], [quantity, "pmt_id", "type", "status"]
        ).opts(
            color=quantity,
            cmap="viridis",
            colorbar=True,
            size=2,
            tools=["hover"],
            xaxis=None,
            yaxis=None,
            responsive=True,
            height=380,
            title=f"Version {state.version}: {_UNITS[quantity]}",
        )
        values = fitted[quantity].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        counts, edges = np.histogram(values, bins=80) if values.size else ([], [0, 1])
        histogram = hv.Histogram((edges, counts), kdims=[quantity], vdims=["PMTs"]).opts(
            responsive=True, height=380, title="Distribution", xlabel=_UNITS[quantity]
        )
        return pn.Row(
            pn.pane.HoloViews(points, sizing_mode="stretch_width"),
            pn.pane.HoloViews(histogram, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    @param.depends("state.moved")
    def _moved(self) -> pn.viewable.Viewable:
        state = self._state
        if state.other is None or state.version is None:
            return pn.Column()
        moved = state.moved
        title = (
            f"#### {len(moved):,} PMTs moved from version {state.other} to {state.version} "
            "(more than 5 % in gain or 1 ns in time)"
        )
        if moved.empty:
            return pn.pane.Markdown(title)
        return pn.Column(
            pn.pane.Markdown(title),
            pn.widgets.Tabulator(
                moved,
                show_index=False,
                disabled=True,
                pagination="local",
                page_size=15,
                sizing_mode="stretch_width",
                formatters={
                    "gain_change": NumberFormatter(format="+0.0%"),
                    "offset_change_ns": NumberFormatter(format="+0.00"),
                    "gain_old": NumberFormatter(format="0.000"),
                    "gain_new": NumberFormatter(format="0.000"),
                    "offset_old": NumberFormatter(format="0.00"),
                    "offset_new": NumberFormatter(format="0.00"),
                },
                css_classes=["moved-table"],
            ),
            sizing_mode="stretch_width",
        )

    @param.depends("state.versions", "state.quantity")
    def _history(self) -> pn.viewable.Viewable:
        state = self._state
        versions = state.versions
        prefix = "gain_" if state.quantity == "gain" else "offset_"
        columns = [c for c in versions.columns if c.startswith(prefix)]
        if len(versions) < 2 or not columns:
            return pn.Column()
        curves = [
            hv.Curve(versions, "version", column, label=column.removeprefix(prefix)).opts(
                tools=["hover"]
            )
            for column in columns
        ]
        overlay = hv.Overlay(curves).opts(
            responsive=True,
            height=260,
            title=f"Mean {_UNITS[state.quantity]} per PMT type over the versions",
            legend_position="right",
        )
        return pn.pane.HoloViews(overlay, sizing_mode="stretch_width")
