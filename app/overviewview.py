"""The Shift overview page: one screen of large tiles, legible from across the control room, that
refresh without a page reload; a tile whose data cannot be read says so instead of showing stale
numbers. A view of :class:`app.state.OverviewState`; no query here."""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from app.source import TILES
from app.state import OverviewState
from app.views import QUALITY_COLOURS, STATUS_COLOURS

__all__ = ["OverviewView", "tile_html"]

TITLES = {
    "current_run": "Taking data",
    "processing": "Processing lag",
    "alarms": "Open alarms",
    "last_runs": "Last 10 runs",
    "sign_off": "Waiting for sign-off",
    "health": "Job server and database",
}

_BIG = "font-size:2.6em;font-weight:600;line-height:1.15"
_WARN, _BAD, _OK = "#E69F00", "#D55E00", "#009E73"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _count(n: Any) -> str:
    return "—" if n is None else f"{int(n):,}"


def _body(name: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """A tile's HTML body and the colour of its edge (None: neutral)."""
    if name == "current_run":
        if data.get("run") is None:
            return f"<div style='{_BIG}'>no run</div><div>nothing is taking data</div>", _WARN
        rate = data.get("rate_hz")
        return (
            (
                f"<div style='{_BIG}'><a href='?page=run&run={data['run']}'>{data['run']}</a></div>"
                f"<div>{html.escape(data['run_type'])} · {_duration(data['duration_s'])} · "
                f"{_count(data['events'])} events · "
                f"{'—' if rate is None else f'{rate:,.0f} Hz'}</div>"
            ),
            None,
        )
    if name == "processing":
        lag = data["lag_s"]
        colour = _BAD if lag > 1800 else _WARN if lag > 300 else _OK
        return (
            (
                f"<div style='{_BIG}'>{_duration(lag) if data['waiting'] else 'none'}</div>"
                f"<div>{_count(data['waiting'])} file{'s' if data['waiting'] != 1 else ''} waiting"
                "</div>"
            ),
            colour,
        )
    if name == "alarms":
        opened = data["open"]
        n = sum(opened.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(opened.items())) or "none"
        acknowledged = sum(data["acknowledged"].values())
        colour = _BAD if opened.get("Bad") else _WARN if n else _OK
        return (
            (
                f"<div style='{_BIG}'><a href='?page=alarms'>{n}</a></div>"
                f"<div>{html.escape(parts)} · {acknowledged} acknowledged</div>"
            ),
            colour,
        )
    if name == "last_runs":
        cells = "".join(
            f"<a class='last-run' href='?page=run&run={run}&tab=checks' title='{status}' "
            f"style='display:inline-block;min-width:4.2em;margin:2px;padding:6px 4px;"
            f"text-align:center;border-radius:4px;color:black;text-decoration:none;"
            f"background:{QUALITY_COLOURS.get(quality, STATUS_COLOURS.get(status, '#EEE'))}'>"
            f"{run}<br><small>{html.escape(quality or status)}</small></a>"
            for run, quality, status in data["runs"]
        )
        return f"<div>{cells or 'no run yet'}</div>", None
    if name == "sign_off":
        counts = data["counts"]
        n_open, n_signed = counts.get("OPEN", 0), counts.get("SIGNED_OFF", 0)
        first = ", ".join(
            f"<a href='?page=run&run={r}&tab=certification'>{r}</a>" for r in data["first"]
        )
        return (
            (
                f"<div style='{_BIG}'>{n_open + n_signed}</div>"
                f"<div>{n_open} to sign off · {n_signed} to certify</div>"
                f"<div>{first}</div>"
            ),
            _WARN if n_open + n_signed else _OK,
        )
    quiet = data["last_job_change_s"]
    colour = _BAD if data["server_quiet"] else _OK
    state = "quiet, with files waiting" if data["server_quiet"] else "working"
    return (
        (
            f"<div style='{_BIG}'>{state}</div>"
            f"<div>{data['jobs_out']} jobs out · last change {_duration(quiet)} ago · "
            f"database answers in {data['database_ms']:.0f} ms</div>"
        ),
        colour,
    )


def tile_html(name: str, data: dict[str, Any] | None) -> str:
    """One tile as HTML (its class says its name, and ``tile-error`` when unreadable)."""
    title = TITLES[name]
    if not data or "error" in (data or {}):
        reason = html.escape((data or {}).get("error", "not read yet"))
        return (
            f"<div class='tile tile-{name} tile-error' style='border-left:8px solid #999;"
            f"padding:8px 14px;background:#F2F2F2'><div style='font-size:1.2em'>{title}</div>"
            f"<div style='{_BIG};color:#777'>?</div><div>{reason}</div></div>"
        )
    body, colour = _body(name, data)
    return (
        f"<div class='tile tile-{name}' style='border-left:8px solid {colour or '#0072B2'};"
        f"padding:8px 14px;font-size:1.1em'><div style='font-size:1.2em'>{title}</div>"
        f"{body}</div>"
    )


class OverviewView(pn.viewable.Viewer):
    """The tiles in a grid, each an HTML pane changed in place on a refresh."""

    state = param.ClassSelector(class_=OverviewState, doc="The tiles' data.")

    def __panel__(self) -> pn.viewable.Viewable:
        if getattr(self, "_layout", None) is None:
            assert self.state is not None
            self._panes = {
                name: pn.pane.HTML(
                    tile_html(name, self.state.tiles.get(name)),
                    sizing_mode="stretch_width",
                    min_height=150,
                )
                for name in TILES
            }
            self.state.param.watch(self._update, "tiles")
            self._layout = pn.Column(
                pn.pane.Markdown("## Shift overview"),
                pn.GridBox(*self._panes.values(), ncols=3, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )
        return self._layout

    def _update(self, event: Any) -> None:
        for name, pane in self._panes.items():
            text = tile_html(name, event.new.get(name))
            if pane.object != text:
                pane.object = text
