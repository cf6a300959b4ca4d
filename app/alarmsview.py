"""The alarms in the dashboard: the banner on every page (the count of open alarms, a link to
them, an opt-in sound and browser notification when one opens) and the Alarms page (filters, the
table, an alarm's history, acknowledging and closing). Views of :class:`app.state.AlarmsState`;
no query here."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import HTMLTemplateFormatter
from panel.custom import JSComponent

from app.source import utc
from app.state import AlarmsState
from app.views import QUALITY_COLOURS

__all__ = ["AlarmBanner", "AlarmSignal", "AlarmsView"]

#: Colours of the alarm states.
STATE_COLOURS = {"OPEN": "#D55E00", "ACKNOWLEDGED": "#E69F00", "RESOLVED": "#009E73"}


class AlarmSignal(JSComponent):
    """In the browser: a short tone and a notification when the count of open alarms rises,
    if the reader switched it on (the choice is kept in the browser's local storage)."""

    count = param.Integer(default=0, doc="Open alarms now.")
    enabled = param.Boolean(default=False, doc="Whether to sound and notify.")

    _esm = """
    export function render({ model, el }) {
      const key = "dqm-alarm-signal";
      if (window.localStorage && localStorage.getItem(key) === "on" && !model.enabled) {
        model.enabled = true;
      }
      let previous = model.count;
      el.setAttribute("data-alarm-count", String(model.count));
      model.on("enabled", () => {
        if (window.localStorage) localStorage.setItem(key, model.enabled ? "on" : "off");
        if (model.enabled && "Notification" in window && Notification.permission === "default") {
          Notification.requestPermission();
        }
      });
      model.on("count", () => {
        el.setAttribute("data-alarm-count", String(model.count));
        if (model.enabled && model.count > previous) {
          try {
            const audio = new (window.AudioContext || window.webkitAudioContext)();
            const tone = audio.createOscillator();
            tone.frequency.value = 880;
            tone.connect(audio.destination);
            tone.start();
            tone.stop(audio.currentTime + 0.4);
          } catch (error) {}
          if ("Notification" in window && Notification.permission === "granted") {
            new Notification("DQM", { body: model.count + " open alarm(s)" });
          }
        }
        previous = model.count;
      });
    }
    """


def _banner_html(counts: dict[str, int]) -> str:
    n = sum(counts.values())
    if not n:
        return "<div class='alarm-banner alarm-none' style='padding:4px 8px;color:#555'>No open alarm.</div>"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    colour = QUALITY_COLOURS["Bad"] if counts.get("Bad") else QUALITY_COLOURS["Warning"]
    return (
        f"<div class='alarm-banner' data-open='{n}' style='background:{colour};color:black;"
        f"padding:6px 10px;border-radius:4px'><b>{n} open alarm{'s' if n != 1 else ''}</b> "
        f"({html.escape(parts)}) · <a href='?page=alarms'>see the alarms</a></div>"
    )


class AlarmBanner(pn.viewable.Viewer):
    """On every page: how many alarms are open (not acknowledged), a link to them, and the
    switch of the sound and browser notification."""

    state = param.ClassSelector(class_=AlarmsState, doc="The alarms.")

    def __panel__(self) -> pn.viewable.Viewable:
        assert self.state is not None
        state = self.state
        signal = AlarmSignal(count=state.n_open, width=0, height=0, margin=0)
        state.param.watch(lambda e: setattr(signal, "count", sum(e.new.values())), "open_counts")
        toggle = pn.widgets.Checkbox.from_param(
            signal.param.enabled, label="Sound and notify", width=150, align="center"
        )
        return pn.Row(
            pn.pane.HTML(
                pn.bind(_banner_html, state.param.open_counts), sizing_mode="stretch_width"
            ),
            toggle,
            signal,
            sizing_mode="stretch_width",
        )


def _text(message: str | None) -> str:
    return message or ""


def _cell(colour_column: str) -> HTMLTemplateFormatter:
    return HTMLTemplateFormatter(
        template=f'<div style="background:<%= {colour_column} %>;color:black;padding:0 4px">'
        "<%= value %></div>"
    )


class AlarmsView(pn.viewable.Viewer):
    """The Alarms page: filters, the alarms newest first (a click shows one's history), and for
    a logged-in user acknowledging (a comment needed) and closing."""

    state = param.ClassSelector(class_=AlarmsState, doc="The alarms.")

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        assert self.state is not None
        state = self.state
        self._table = pn.widgets.Tabulator(
            self._frame(),
            show_index=False,
            disabled=True,
            selectable=False,
            sizing_mode="stretch_width",
            pagination="local",
            page_size=25,
            hidden_columns=["state_colour", "severity_colour"],
            formatters={
                "State": _cell("state_colour"),
                "Severity": _cell("severity_colour"),
                "Run": HTMLTemplateFormatter(template="<%= value %>"),
                "What": HTMLTemplateFormatter(
                    template='<div style="white-space:normal"><%= value %></div>'
                ),
            },
            widths={"What": 520},
            css_classes=["alarms-table"],
        )
        self._table.on_click(self._clicked)
        state.param.watch(lambda *_: setattr(self._table, "value", self._frame()), "alarms")
        filters = pn.Row(
            pn.widgets.MultiChoice.from_param(state.param.states, label="State", width=380),
            pn.widgets.Select.from_param(state.param.severity, label="Severity", width=140),
            pn.widgets.TextInput.from_param(
                state.param.run, label="Run", placeholder="e.g. 10004", width=140
            ),
        )
        message = pn.pane.Alert(
            pn.bind(_text, state.param.message),
            alert_type="info",
            visible=pn.bind(bool, state.param.message),
        )
        notice = pn.pane.Alert(
            pn.bind(_text, state.param.notice),
            alert_type="info",
            visible=pn.bind(bool, state.param.notice),
            css_classes=["alarm-notice"],
        )
        return pn.Column(
            pn.pane.Markdown("## Alarms"),
            filters,
            message,
            notice,
            self._table,
            pn.panel(self._detail),
            sizing_mode="stretch_width",
        )

    def _frame(self) -> pd.DataFrame:
        assert self.state is not None
        frame = self.state.alarms.copy()
        frame["state_colour"] = [STATE_COLOURS.get(s, "#FFF") for s in frame["state"]]
        frame["severity_colour"] = [QUALITY_COLOURS.get(s, "#FFF") for s in frame["severity"]]
        frame["run"] = [
            f"<a href='?page=run&run={int(r)}&tab=checks'>{int(r)}</a>" if pd.notna(r) else ""
            for r in frame["run"]
        ]
        frame["sentence"] = [html.escape(s) for s in frame["sentence"]]
        frame["opened"] = [utc(v) if pd.notna(v) else "" for v in frame["opened"]]
        return frame.rename(
            columns={
                "id": "Alarm",
                "state": "State",
                "severity": "Severity",
                "run": "Run",
                "check": "Check",
                "sentence": "What",
                "opened": "Opened (UTC)",
                "acknowledged_by": "Acknowledged by",
                "resolved_by": "Resolved by",
                "notifications": "Notices",
            }
        )

    def _clicked(self, event: Any) -> None:
        assert self.state is not None
        if event.row is not None and event.row < len(self.state.alarms):
            self.state.show(int(self.state.alarms.iloc[event.row]["id"]))

    @param.depends("state.selected", "state.history")
    def _detail(self) -> pn.viewable.Viewable:
        assert self.state is not None
        state = self.state
        if state.selected is None:
            return pn.pane.Markdown("Click an alarm to see its history and act on it.")
        history = state.history.copy()
        if not history.empty:
            history["at"] = [utc(v) for v in history["at"]]
        parts: list[pn.viewable.Viewable] = [
            pn.pane.Markdown(f"### Alarm {state.selected}"),
            pn.widgets.Tabulator(
                history, show_index=False, disabled=True, sizing_mode="stretch_width"
            ),
        ]
        if state.may("acknowledge_alarm"):
            comment = pn.widgets.TextAreaInput(
                label="Comment (what was done, or why it is fine)",
                rows=2,
                sizing_mode="stretch_width",
                css_classes=["alarm-comment"],
            )
            acknowledge = pn.widgets.Button(
                label="Acknowledge", color="primary", width=140, css_classes=["alarm-ack"]
            )
            selected = state.selected
            acknowledge.on_click(lambda _e: state.acknowledge(selected, comment.value or ""))
            buttons: list[pn.viewable.Viewable] = [acknowledge]
            if state.may("close_alarm"):
                close = pn.widgets.Button(label="Close", width=100, css_classes=["alarm-close"])
                close.on_click(lambda _e: state.close(selected, comment.value or ""))
                buttons.append(close)
            parts.append(pn.Row(comment, *buttons, sizing_mode="stretch_width"))
        elif state.actor.logged_in:
            parts.append(
                pn.pane.Markdown(
                    f"Acknowledging an alarm needs the shifter role; {state.user} is {state.role.with_article}."
                )
            )
        else:
            parts.append(pn.pane.Markdown("[Log in](login) to acknowledge or close an alarm."))
        return pn.Column(*parts, sizing_mode="stretch_width")
