"""The DQM dashboard: one app object that works in a notebook and under ``panel serve``.

    dqm serve                                   # http://127.0.0.1:5006
    panel serve app/main.py --port 5006         # the same, through Panel

The web server needs only the database (``DQM_DATABASE_URL`` or the configuration file). The URL
carries the state — ``?page=run&run=10004&tab=pmt``, or a trend with its choice,
``?page=trends&analysis=energy_scale&version=2&variables=peak_mev&x=rank&days=30`` — so links can
be shared and the back button works; a bad parameter gives a friendly message.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import panel as pn
import param

from app.alarmsview import AlarmBanner, AlarmsView
from app.calibrationsview import CalibrationsView
from app.editor import EditorState
from app.editorview import EditorView
from app.overviewview import OverviewView
from app.source import Source
from app.state import (
    RUN_TABS,
    AlarmsState,
    CalibrationsState,
    JobsState,
    OverviewState,
    RecentRuns,
    RunState,
    parse_run_id,
)
from app.trends import CHOICE, URL_PARAMETERS, TrendsState
from app.trendsview import TrendsView
from app.views import JobsView, RecentRunsView, RunPage
from dqm.pmtclass import HitRateCuts
from dqm.users import GUEST, Role, may_write, role_for

PAGES = ("overview", "runs", "run", "trends", "jobs", "alarms", "calibrations", "editor")
TITLES = {
    "overview": "Shift overview",
    "runs": "Recent runs",
    "run": "Run",
    "trends": "Trends",
    "jobs": "Jobs",
    "alarms": "Alarms",
    "calibrations": "Calibrations",
    "editor": "Check editor",
}


#: Every app object alive in this process (one per browser session under a server).
_LIVE: weakref.WeakSet[DQMApp] = weakref.WeakSet()


def apps_in_memory(collect: bool = True) -> int:
    """How many app objects this process holds: under a server, the sessions open and not yet
    dropped. More than that would be a leak. ``collect``: after a garbage collection (the server
    collects after dropping sessions, and counts without one)."""
    if collect:
        import gc

        gc.collect()
    return len(_LIVE)


class DQMApp(pn.viewable.Viewer):
    """Navigation between Recent runs, a Run page (Base, Calib, Rec, PMT info, Analyses), the
    Trends of the analyses and Jobs."""

    source = param.ClassSelector(class_=Source, doc="The database read by every page.")
    page = param.String(
        default="overview",
        doc="The page shown (overview, runs, run, trends, jobs, alarms, calibrations, editor).",
    )
    run = param.String(default="", doc="The run of the Run page, as given in the URL.")
    tab = param.String(
        default="base",
        doc="The tab of the Run page (base, calib, rec, pmt, events, analyses, checks, "
        "certification).",
    )
    trend = param.Dict(
        default={}, doc="The choice of the Trends page, as URL parameters (app.trends)."
    )
    refresh_s = param.Number(default=10.0, bounds=(0, None), doc="Seconds between refreshes.")
    user = param.String(
        default=None,
        allow_None=True,
        doc="The logged-in user (None, 'guest': nobody; they read).",
    )
    role: param.Selector[Role] = param.Selector(
        objects=list(Role), default=Role.VIEWER, doc="The user's role: what they may change."
    )
    login = param.Boolean(default=False, doc="Whether the server has a login page.")
    page_timer = param.Callable(
        default=None,
        doc="Told (page, seconds) each time a page is built or shown again (the server's metrics).",
    )

    def __init__(self, **params: Any) -> None:
        if params.get("run") and "page" not in params:
            params["page"] = "run"  # ?run=10004 opens the run
        super().__init__(**params)
        # a logged-in viewer's previous visit: the runs with comments since are marked
        previous = (
            self.source.record_visit(self.user)
            if self.source is not None and self.user is not None and may_write(self.user)
            else None
        )
        self.runs_state = RecentRuns(source=self.source, new_since=previous)
        self.run_state = RunState(source=self.source, user=self.user, role=self.role)
        self.jobs_state = JobsState(source=self.source, user=self.user, role=self.role)
        self.alarms_state = AlarmsState(source=self.source, user=self.user, role=self.role)
        self.overview_state = OverviewState(source=self.source)
        self._overview_view = OverviewView(state=self.overview_state)
        self.alarms_state.refresh_counts()
        self._banner = AlarmBanner(state=self.alarms_state)
        self._alarms_view = AlarmsView(state=self.alarms_state)
        self._main = pn.Column(sizing_mode="stretch_width")
        self._message = pn.pane.Alert(alert_type="warning", visible=False)
        # One component per page, built once and shown again as the URL changes.
        self._runs_view = RecentRunsView(state=self.runs_state, on_select=self.open_run)
        self._run_page = RunPage(state=self.run_state, on_try_cuts=self.try_cuts)
        self._run_page.param.watch(lambda e: setattr(self, "tab", e.new), "tab")
        self._jobs_view = JobsView(state=self.jobs_state)
        # The Trends and Check editor pages', made on their first visit (most sessions never
        # open them).
        self.trends_state: TrendsState | None = None
        self._trends_view: TrendsView | None = None
        self.editor_state: EditorState | None = None
        self._editor_view: EditorView | None = None
        self.calibrations_state: CalibrationsState | None = None
        self._calibrations_view: CalibrationsView | None = None
        #: The component shown (RecentRunsView, RunPage, TrendsView or JobsView).
        self.view: pn.viewable.Viewer | None = None
        self.param.watch(self._route, ["page", "run", "tab", "trend"])
        self._route()
        _LIVE.add(self)

    # --- navigation -------------------------------------------------------------------------

    def open_run(self, run_id: int) -> None:
        self.param.update(page="run", run=str(run_id), tab="base")

    def _open_page(self, page: str, _event: Any) -> None:
        self.param.update(page=page)

    def _route(self, *_: Any) -> None:
        began = time.perf_counter()
        problems = []
        page = self.page if self.page in PAGES else "runs"
        if self.page not in PAGES:
            problems.append(f"There is no page '{self.page[:40]}'; showing the recent runs.")
        if page == "run" or (self.run and page == "runs" and self.page not in PAGES):
            run_id, problem = parse_run_id(self.run)
            if problem:
                problems.append(problem)
                page = "runs"
            elif run_id is None:
                problems.append("Choose a run in the table.")
                page = "runs"
            else:
                tab = self.tab if self.tab in RUN_TABS else "base"
                if self.tab not in RUN_TABS:
                    problems.append(
                        f"There is no tab '{self.tab[:40]}'; the tabs are {', '.join(RUN_TABS)}."
                    )
                self.run_state.run_id = run_id
                if self.run_state.summary is None:
                    problems.append(self.run_state.message)
                    page = "runs"
                else:
                    self._run_page.tab = tab
        if page == "trends":
            problems += self._open_trends()
        self._message.object = " ".join(problems)
        self._message.visible = bool(problems)
        if page == "run":
            content: Any = self._run_page
        elif page == "trends":
            content = self._trends_view
        elif page == "jobs":
            self.jobs_state.refresh()
            content = self._jobs_view
        elif page == "alarms":
            self.alarms_state.refresh()
            content = self._alarms_view
        elif page == "editor":
            content = self._open_editor()
        elif page == "overview":
            self.overview_state.refresh()
            content = self._overview_view
        elif page == "calibrations":
            if self.calibrations_state is None or self._calibrations_view is None:
                self.calibrations_state = CalibrationsState(source=self.source)
                self._calibrations_view = CalibrationsView(state=self.calibrations_state)
            self.calibrations_state.refresh()
            content = self._calibrations_view
        else:
            content = self._runs_view
        if content is not self.view:  # another tab of the same run changes nothing here
            self.view = content
            self._main[:] = [self._banner, self._message, content]
        if self.page_timer is not None:
            self.page_timer(page, time.perf_counter() - began)

    def try_cuts(self, run_type: str, cuts: HitRateCuts) -> None:
        """Open the Check editor with these cuts of this run type, ready to back-test."""
        self.param.update(page="editor")
        assert self.editor_state is not None  # made by the page's first visit
        self.editor_state.use_cuts(run_type, cuts)

    def _open_editor(self) -> EditorView:
        """The Check editor, its checks read again on each visit."""
        if self.editor_state is None or self._editor_view is None:
            self.editor_state = EditorState(source=self.source, user=self.user, role=self.role)
            self._editor_view = EditorView(state=self.editor_state)
        self.editor_state.load()
        return self._editor_view

    def _open_trends(self) -> list[str]:
        """Show the trend that :attr:`trend` says (the page's state made on its first visit);
        what in it was not valid."""
        if self.trends_state is None:
            self.trends_state = TrendsState(source=self.source)
            self._trends_view = TrendsView(state=self.trends_state, on_open=self.open_run)
            self.trends_state.param.watch(self._trend_chosen, [*CHOICE, "x_axis"])
            if not self.trend:  # the state's defaults: say them in the URL
                self._trend_chosen()
                return []
        if self.trend == self.trends_state.arguments():
            return []
        return self.trends_state.apply_arguments(self.trend)

    def _trend_chosen(self, *_: Any) -> None:
        assert self.trends_state is not None
        if self.page == "trends":
            self.trend = self.trends_state.arguments()

    def refresh(self) -> None:
        """Read the database again for the page shown, and the alarms' count (periodic)."""
        changed = self.alarms_state.refresh_counts()
        if self.page == "alarms":
            if changed:
                self.alarms_state.refresh()
        elif self.page == "trends" and self.trends_state is not None:
            self.trends_state.refresh()
        elif self.page == "run" and self.run_state.run_id is not None:
            self.run_state.refresh()
        elif self.page == "jobs":
            self.jobs_state.refresh()
        elif self.page == "editor":
            pass  # a form being edited: read again on the next visit, not under the user's hands
        elif self.page == "overview":
            self.overview_state.refresh()
        elif self.page == "calibrations" and self.calibrations_state is not None:
            self.calibrations_state.refresh()
        else:
            self.runs_state.refresh()

    # --- layout -----------------------------------------------------------------------------

    def _navigation(self) -> pn.viewable.Viewable:
        buttons: list[pn.viewable.Viewable] = []
        for name in PAGES:
            button = pn.widgets.Button(
                label=TITLES[name], color="light", sizing_mode="stretch_width"
            )
            button.on_click(functools.partial(self._open_page, name))
            buttons.append(button)
        if self.login:
            if may_write(self.user):
                who = f"Logged in as **{self.user}** ({self.role}) · [Log out](logout)"
            else:
                who = "[Log in](login) to acknowledge alarms, comment, or change checks and cuts."
            buttons.append(pn.pane.Markdown(who))
        return pn.Column(*buttons)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(pn.Column(self._navigation(), width=180), self._main)

    def _apply_url_arguments(self) -> None:
        """Open the page that the request's URL names (before the URL is kept in step)."""
        arguments = {
            name: values[-1].decode("utf-8", "replace")
            for name, values in (pn.state.session_args or {}).items()
            if name in ("page", "run", "tab", *URL_PARAMETERS) and values
        }
        if arguments.get("run") and "page" not in arguments:
            arguments["page"] = "run"
        trend = {k: arguments.pop(k) for k in URL_PARAMETERS if k in arguments}
        if arguments or trend:
            self.param.update(**arguments, trend=trend)

    def _trend_in_url(self, *_: Any) -> None:
        """The trend's parameters in the URL while the Trends page is shown (and only then)."""
        location = pn.state.location
        if location is None:
            return
        query = {k: v for k, v in location.query_params.items() if k not in URL_PARAMETERS}
        query.update(page=self.page, run=self.run, tab=self.tab)
        if self.page == "trends":
            query.update(self.trend)
        search = "?" + urlencode(query)
        if search != location.search:
            location.search = search

    def _trend_from_url(self, event: Any) -> None:
        """The back and forward buttons: the trend of the URL shown."""
        query = {k: str(v) for k, v in parse_qsl(event.new.lstrip("?"))}
        if query.get("page") == "trends":
            self.trend = {k: v for k, v in query.items() if k in URL_PARAMETERS}

    def servable_template(self) -> pn.template.BootstrapTemplate:
        """The app in a template, with the URL kept in step and a periodic refresh."""
        template = pn.template.BootstrapTemplate(
            title="DQM — data-quality monitoring",
            sidebar=[self._navigation()],
            main=[self._main],
            header_background="#0072B2",
            # The header's busy spinner costs a fifth of the server's time per slider change (it
            # is updated through the template's design on every event): the page has its own
            # progress in each view.
            busy_indicator=None,
        )
        if pn.state.location is not None:
            self._apply_url_arguments()
            # Before the sync's own watcher: a change of page makes one new URL, not two (the
            # back button would return to the one in between).
            self.param.watch(self._trend_in_url, ["page", "run", "tab", "trend"])
            pn.state.location.sync(self, {"page": "page", "run": "run", "tab": "tab"})
            pn.state.location.param.watch(self._trend_from_url, "search")
            self._trend_in_url()
        if self.refresh_s:
            pn.state.add_periodic_callback(self.refresh, period=int(self.refresh_s * 1000))
        return template


def session_role(
    user: str | None,
    user_info: dict[str, Any] | None,
    *,
    credential_roles: dict[str, Role] | None,
    settings: Any,
) -> Role:
    """The role of a session's user: the credentials file's, else what the configured roles give
    the user or their groups (the OAuth provider's ``roles_claim``), else the default role."""
    if credential_roles is not None and user in credential_roles:
        return credential_roles[user]
    groups = (user_info or {}).get(settings.roles_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    groups = [g for g in groups if isinstance(g, str)]
    return role_for(user, groups, roles=settings.roles, default=settings.default_role)


def create_app(
    database_url: str | None = None,
    refresh_s: float = 10.0,
    user: str | None = None,
    login: bool | None = None,
    checks_file: Path | None = None,
    role: Role | None = None,
    page_timer: Callable[[str, float], None] | None = None,
) -> DQMApp:
    """The dashboard on a database (default: the configured one, with the configured checks
    file). Under a server, the user is the one logged in (``pn.state.user``; anonymous visitors
    are 'guest' and only read); ``page_timer`` is told how long each page took to build."""
    if database_url is None:
        from dqm.config import load_settings

        settings = load_settings()
        database_url = settings.database_url
        checks_file = checks_file or settings.checks_file
    served = pn.state.curdoc is not None
    if user is None and served:
        user = pn.state.user
    if login is None:
        login = bool(pn.config.basic_auth or pn.config.oauth_provider)
    if role is None and login and user and user != GUEST:
        # `panel serve app/main.py --basic-auth ...` or `--oauth-provider ...`: the role the
        # configuration gives the user or their groups (dqm serve passes the role itself)
        from dqm.config import load_settings

        role = session_role(
            user,
            pn.state.user_info if served else None,
            credential_roles=None,
            settings=load_settings(),
        )
    return DQMApp(
        source=Source(database_url, checks_file=checks_file),
        refresh_s=refresh_s,
        user=user,
        role=role if role is not None else Role.VIEWER,
        login=login,
        page_timer=page_timer,
    )


if pn.state.served:  # panel serve app/main.py
    pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
    create_app().servable_template().servable()
