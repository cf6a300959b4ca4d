"""The Check editor page: a check's thresholds, or a run type's PMT cut defaults, edited and tried
on past runs, the table of what would change, and saving what was tried. A view of
:class:`app.editor.EditorState`; no query here."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import HTMLTemplateFormatter

from app.editor import EditorState
from app.views import QUALITY_COLOURS, STAGE_TITLES

__all__ = ["EditorView"]

_INTRO = (
    "Try a change on past runs before saving it: the table gives each run's quality as things "
    "are and as proposed, and which runs would change. Nothing is stored until you save, which "
    "makes a new version of the check (or new default cuts of the run type), recorded in the "
    "changes."
)


def _text(message: str | None) -> str:
    return message or ""


def _quality_cell(colour_column: str) -> HTMLTemplateFormatter:
    return HTMLTemplateFormatter(
        template=f'<div style="background:<%= {colour_column} %>;color:black;padding:0 4px">'
        "<%= value %></div>"
    )


def _wrapped() -> HTMLTemplateFormatter:
    return HTMLTemplateFormatter(template='<div style="white-space:normal"><%= value %></div>')


def backtest_frame(rows: pd.DataFrame, only_changes: bool) -> pd.DataFrame:
    """The back-test's rows as the table shows them (links, colours, escaped sentences)."""
    frame = rows[rows["changes"].astype(bool)] if only_changes else rows
    frame = frame.copy()
    frame["current_colour"] = [QUALITY_COLOURS.get(q, "#FFF") for q in frame["current"]]
    frame["proposed_colour"] = [QUALITY_COLOURS.get(q, "#FFF") for q in frame["proposed"]]
    frame["run"] = [
        f"<a href='?page=run&run={int(r)}&tab=checks'>{int(r)}</a>" for r in frame["run"]
    ]
    frame["changes"] = ["changes" if c else "" for c in frame["changes"]]
    for column in ("current_sentence", "proposed_sentence"):
        frame[column] = [html.escape(s) for s in frame[column]]
    return frame.rename(
        columns={
            "run": "Run",
            "run_type": "Type",
            "check": "Check",
            "current": "Now",
            "proposed": "Proposed",
            "changes": "",
            "current_sentence": "Why now",
            "proposed_sentence": "Why, as proposed",
        }
    )


class EditorView(pn.viewable.Viewer):
    """The Check editor page."""

    state = param.ClassSelector(class_=EditorState, doc="The editor.")
    only_changes = param.Boolean(default=False, doc="Show only the runs that would change.")

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            self._layout = self._build()
        return self._layout

    @property
    def _state(self) -> EditorState:
        assert self.state is not None, "EditorView shows an EditorState"
        return self.state

    def _build(self) -> pn.viewable.Viewable:
        state = self._state
        self._choice = pn.widgets.Select(
            label="Check", options=self._options(), width=420, css_classes=["editor-check"]
        )
        self._choice.value = state.check
        self._choice.param.watch(lambda e: setattr(state, "check", e.new or ""), "value")
        state.param.watch(self._checks_changed, "checks")
        state.param.watch(lambda e: setattr(self._choice, "value", e.new), "check")
        try_check = pn.widgets.Button(
            label="Back-test this check", color="primary", css_classes=["editor-try-check"]
        )
        try_check.on_click(self._try_check)
        try_cuts = pn.widgets.Button(
            label="Back-test these cuts", color="primary", css_classes=["editor-try-cuts"]
        )
        try_cuts.on_click(self._try_cuts)
        for button in (try_check, try_cuts):
            button.param.update(disabled=state.param.running)
        n_runs = pn.widgets.IntInput.from_param(
            state.param.n_runs, label="Past runs to judge", width=160
        )
        check_card = pn.Card(
            self._choice,
            pn.panel(self._check_form),
            try_check,
            title="A check's parameters",
            collapsible=False,
            sizing_mode="stretch_width",
        )
        cuts_card = pn.Card(
            pn.widgets.Select.from_param(state.param.run_type, label="Run type", width=200),
            pn.pane.Markdown(pn.bind(_text, state.param.saved_cuts)),
            pn.Row(
                pn.widgets.FloatInput.from_param(
                    state.param.dead_cut, label="Dead: hit rate below", step=0.005, width=170
                ),
                pn.widgets.FloatInput.from_param(
                    state.param.hot_cut, label="Hot: hit rate above", step=0.005, width=170
                ),
                pn.widgets.FloatInput.from_param(
                    state.param.normal_low, label="Normal band from", step=0.005, width=170
                ),
                pn.widgets.FloatInput.from_param(
                    state.param.normal_high, label="Normal band to", step=0.005, width=170
                ),
                sizing_mode="stretch_width",
            ),
            try_cuts,
            title="The PMT cut defaults of a run type",
            collapsible=False,
            sizing_mode="stretch_width",
        )
        progress = pn.indicators.Progress(
            value=state.param.done,
            max=pn.bind(max, state.param.total, 1),
            visible=state.param.running,
            sizing_mode="stretch_width",
            css_classes=["editor-progress"],
        )
        notice = pn.pane.Alert(
            pn.bind(_text, state.param.notice),
            alert_type="info",
            visible=pn.bind(bool, state.param.notice),
            css_classes=["editor-notice"],
        )
        return pn.Column(
            pn.pane.Markdown(f"## Check editor\n{_INTRO}"),
            check_card,
            cuts_card,
            pn.Row(n_runs, sizing_mode="stretch_width"),
            progress,
            notice,
            pn.panel(self._result),
            sizing_mode="stretch_width",
        )

    # --- the check ------------------------------------------------------------------------------

    def _options(self) -> dict[str, str]:
        options = {"(choose a check)": ""}
        for info in self._state.checks:
            stage = STAGE_TITLES.get(info.stage, info.stage)
            options[f"{stage} · {info.name} v{info.version}"] = info.name
        return options

    def _checks_changed(self, _event: Any) -> None:
        self._choice.options = self._options()
        self._choice.value = self._state.check

    @param.depends("state.check", "state.checks")
    def _check_form(self) -> pn.viewable.Viewable:
        state = self._state
        info = state.info
        if info is None:
            return pn.pane.Markdown(
                "Choose a check to see its parameters; edit them, then back-test."
            )
        types = ", ".join(info.run_types) or "all run types"
        looks_at = f" · looks at `{info.looks_at}`" if info.looks_at else ""
        header = pn.pane.Markdown(
            f"**{html.escape(info.name)}** v{info.version} ({info.kind}{looks_at}; {types}): "
            f"{html.escape(info.description)}  \n<small>From {html.escape(info.origin)}</small>",
            sizing_mode="stretch_width",
        )
        fields: list[pn.viewable.Viewable] = []
        for parameter in info.parameters:
            if parameter.choices:
                field: pn.widgets.Widget = pn.widgets.Select(
                    label=parameter.name,
                    options=list(parameter.choices),
                    value=state.values.get(parameter.name, parameter.value),
                    description=parameter.meaning,
                    width=190,
                )
            else:
                field = pn.widgets.TextInput(
                    label=parameter.name,
                    value=state.values.get(parameter.name, parameter.value),
                    description=parameter.meaning,
                    width=190,
                )
            field.param.watch(self._value_changed(parameter.name), "value")
            fields.append(field)
        return pn.Column(
            header,
            pn.FlexBox(*fields, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            css_classes=["editor-form"],
        )

    def _value_changed(self, name: str) -> Any:
        def changed(event: Any) -> None:
            self._state.values = {**self._state.values, name: str(event.new)}

        return changed

    async def _try_check(self, _event: Any) -> None:
        await asyncio.to_thread(self._state.try_check)

    async def _try_cuts(self, _event: Any) -> None:
        await asyncio.to_thread(self._state.try_cuts)

    # --- the result -----------------------------------------------------------------------------

    @param.depends(
        "state.result",
        "state.result_of",
        "only_changes",
        "state.check",
        "state.values",
        "state.run_type",
        "state.dead_cut",
        "state.hot_cut",
        "state.normal_low",
        "state.normal_high",
    )
    def _result(self) -> pn.viewable.Viewable:
        state = self._state
        result = state.result
        if result is None:
            return pn.Column()
        table = pn.widgets.Tabulator(
            backtest_frame(result.rows, self.only_changes),
            show_index=False,
            disabled=True,
            selectable=False,
            sizing_mode="stretch_width",
            pagination="local",
            page_size=50,
            hidden_columns=["current_colour", "proposed_colour"],
            formatters={
                "Run": HTMLTemplateFormatter(template="<%= value %>"),
                "Now": _quality_cell("current_colour"),
                "Proposed": _quality_cell("proposed_colour"),
                "Why now": _wrapped(),
                "Why, as proposed": _wrapped(),
            },
            widths={"Why now": 380, "Why, as proposed": 380},
            css_classes=["backtest-table"],
        )
        parts: list[pn.viewable.Viewable] = [
            pn.pane.Markdown(
                f"### {html.escape(result.title)}\n**{html.escape(result.summary)}**",
                css_classes=["backtest-summary"],
            ),
            pn.widgets.Checkbox.from_param(
                self.param.only_changes, label="Only the runs that would change"
            ),
            table,
        ]
        parts.append(self._save_row())
        return pn.Column(*parts, sizing_mode="stretch_width")

    def _save_row(self) -> pn.viewable.Viewable:
        state = self._state
        kind = state.result_of[0] if state.result_of else ""
        action = "edit_checks" if kind == "check" else "edit_cuts"
        if not state.may(action):
            return pn.pane.Markdown(
                "Saving a change needs the expert role: [log in](login) as an expert."
                if not state.actor.logged_in
                else f"Saving a change needs the expert role; {state.user} is {state.role.with_article}."
            )
        if kind == "check" and state.can_save_check:
            info = state.info
            label = f"Save as version {info.version + 1} of {info.name}" if info else "Save"
            save_action: Any = state.save_check
        elif kind == "cuts" and state.can_save_cuts:
            label = f"Save as the default cuts of {state.run_type} runs"
            save_action = state.save_cuts
        else:
            return pn.pane.Markdown(
                "The values were edited since this table was made: back-test them again to "
                "save them."
            )
        comment = pn.widgets.TextInput.from_param(
            state.param.comment, label="Why (kept in the changes)", sizing_mode="stretch_width"
        )
        save = pn.widgets.Button(
            label=label, color="warning", align="end", css_classes=["editor-save"]
        )
        save.on_click(lambda _e: save_action())
        return pn.Row(comment, save, sizing_mode="stretch_width")
