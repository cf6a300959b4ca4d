"""State of the dashboard: ``param.Parameterized`` classes with input parameters (search mode,
run number, reference run, …) and output parameters (the runs table, a run's summary and
histograms, the jobs' figures) computed from the database through :class:`app.source.Source`. No
widgets: these are testable without a server or a browser, and the views (:mod:`app.views`) only
read them.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import pandas as pd
import param

from app.cuts import PmtCuts
from app.events import EventsState
from app.source import (
    ALARM_COLUMNS,
    BACKFILL_COLUMNS,
    CALIBRATION_COLUMNS,
    COMMENT_COLUMNS,
    MASK_COLUMNS,
    PMT_HISTORY_COLUMNS,
    RUN_COLUMNS,
    PmtChangeSummary,
    RunCertification,
    RunChecks,
    RunSummary,
    Source,
    StoredHistogram,
)
from dqm import pmtstatus
from dqm.certification import CERTIFICATION_FILTER
from dqm.checks.quality import Quality
from dqm.db.queries import NOT_JUDGED
from dqm.errors import DQMError
from dqm.runs import parse_id
from dqm.states import AlarmState, RunStatus
from dqm.users import Actor, Role

#: Search modes of the recent-runs page.
MODES = ("Recent Runs", "Recent Completed", "Recent Days")
#: Tabs of the run page, as they appear in the URL.
RUN_TABS = ("base", "calib", "rec", "pmt", "events", "analyses", "checks", "certification")
#: The qualities the recent runs can be filtered on.
QUALITY_FILTER = (*[q.value for q in Quality], NOT_JUDGED)


def parse_run_id(text: str | int | None) -> tuple[int | None, str]:
    """A run number from user input (URL, search box): ``(run_id, "")`` or ``(None, reason)``."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, ""
    try:
        return parse_id(text), ""
    except DQMError as exc:
        return None, f"{str(exc)[0].upper()}{str(exc)[1:]}"


def _signature(
    histograms: dict[str, list[StoredHistogram]],
) -> list[tuple[str, str, str, float]]:
    """What identifies the content of a run's stored histograms (the provenance names the files
    and events merged; the sum catches a re-merge of the same files)."""
    return [
        (stage, h.name, repr(sorted(h.provenance.items())), float(h.histogram.sum()))
        for stage, stored in sorted(histograms.items())
        for h in stored
    ]


class RecentRuns(param.Parameterized):
    """The recent-runs table: search mode, filters and the resulting runs."""

    source = param.ClassSelector(class_=Source, doc="Where the runs are read from.")
    mode: param.Selector[str] = param.Selector(
        objects=list(MODES), default=MODES[0], doc="Search mode."
    )
    n_runs = param.Integer(default=50, bounds=(1, 100_000), doc="Runs shown in the Recent modes.")
    days = param.Number(default=7.0, bounds=(0.0, 3650.0), doc="Days back in Recent Days mode.")
    statuses = param.ListSelector(
        default=[], objects=[s.value for s in RunStatus], doc="Only these statuses (all if empty)."
    )
    run_types = param.ListSelector(default=[], objects=[], doc="Only these run types.")
    qualities = param.ListSelector(
        default=[], objects=list(QUALITY_FILTER), doc="Only runs of these qualities (all if empty)."
    )
    certifications = param.ListSelector(
        default=[],
        objects=list(CERTIFICATION_FILTER),
        doc="Only runs in these sign-off states (all if empty).",
    )
    search = param.String(default="", doc="A run number to look for.")
    new_since = param.Date(
        default=None,
        allow_None=True,
        doc="The viewer's previous visit: the runs with comments since are marked.",
    )
    runs = param.DataFrame(default=pd.DataFrame(columns=RUN_COLUMNS), doc="The runs found.")
    message = param.String(default="", doc="Why nothing is shown, or what was wrong.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.param.run_types.objects = self.source.run_types() if self.source else []
        self.refresh()

    @property
    def _source(self) -> Source:
        """:attr:`source`, which the app always gives (param types the parameter as optional)."""
        assert self.source is not None, "RecentRuns is read from a Source"
        return self.source

    def good_runs_csv(self) -> io.BytesIO:
        """The good-run list (certified Good runs of the run types chosen, all if none) as CSV,
        with the versions each was certified under."""
        frame = self._source.good_runs(list(self.run_types) or None)
        return io.BytesIO(frame.to_csv(index=False).encode("utf-8"))

    @param.depends(
        "mode",
        "n_runs",
        "days",
        "statuses",
        "run_types",
        "qualities",
        "certifications",
        "search",
        watch=True,
    )
    def refresh(self) -> None:
        """Read the runs again (also called periodically by the served app)."""
        run_id, problem = parse_run_id(self.search)
        if problem:
            self.message = problem
            self.runs = self.runs.iloc[0:0]
            return
        try:
            runs = self._source.recent_runs(
                mode=self.mode,
                limit=self.n_runs,
                days=self.days,
                statuses=list(self.statuses),
                run_types=list(self.run_types),
                run_id=run_id,
                qualities=list(self.qualities),
                certifications=list(self.certifications),
                new_since=self.new_since if isinstance(self.new_since, dt.datetime) else None,
            )
        except DQMError as exc:
            self.message = str(exc)
            return
        if not runs.equals(self.runs):  # unchanged: the table keeps its scroll position
            self.runs = runs
        if run_id is not None and self.runs.empty:
            self.message = f"There is no run {run_id}."
        elif self.runs.empty:
            self.message = "No run matches these filters."
        else:
            self.message = ""


class Acting(param.Parameterized):
    """Who uses a page: the logged-in user and their role, asked before every write (the data
    access refuses a write the role does not allow, whatever the page offered)."""

    user = param.String(
        default=None, allow_None=True, doc="The logged-in user; None or 'guest': read only."
    )
    role: param.Selector[Role] = param.Selector(
        objects=list(Role), default=Role.VIEWER, doc="The user's role (dqm.users)."
    )

    @property
    def actor(self) -> Actor:
        return Actor(self.user, self.role)

    def may(self, action: str) -> bool:
        """Whether the user may do ``action`` (a key of dqm.users.PERMISSIONS): what to offer."""
        return self.actor.may(action)


class PmtHistoryState(Acting):
    """A run's PMT changes, one PMT's history, and the PMT masks (the PMT page's lower part,
    :mod:`app.pmthistoryview`); masks are written by experts only (the source asks).

    Example (in a notebook)::

        state = PmtHistoryState(source=Source(url), run_id=1234)
        state.search("4242")
        state.history  # the PMT in each run
    """

    source = param.ClassSelector(class_=Source, doc="Where the history is read from.")
    run_id = param.Integer(default=None, allow_None=True, doc="The run shown.")
    changes = param.ClassSelector(
        class_=PmtChangeSummary, allow_None=True, doc="The run's classes and their changes."
    )
    pmt_id = param.Integer(default=None, allow_None=True, doc="The PMT searched for.")
    same_type_only = param.Boolean(default=True, doc="Show the PMT in runs of the run's type only.")
    history = param.DataFrame(
        default=pd.DataFrame(columns=list(PMT_HISTORY_COLUMNS)),
        doc="The PMT in each run, oldest first.",
    )
    first_dead_run = param.Integer(
        default=None, allow_None=True, doc="The first run in which the PMT was dead."
    )
    mask = param.Dict(default=None, allow_None=True, doc="The mask version valid for the run.")
    masks = param.DataFrame(
        default=pd.DataFrame(columns=list(MASK_COLUMNS)), doc="Every version of the mask."
    )
    message = param.String(default="", doc="Why the search shows nothing, in one sentence.")
    notice = param.String(default="", doc="The outcome of the last change (saved, or why not).")

    @property
    def _source(self) -> Source:
        assert self.source is not None, "PmtHistoryState is read from a Source"
        return self.source

    @property
    def run_type(self) -> str | None:
        return self.changes.run_type if self.changes is not None else None

    @param.depends("run_id", watch=True, on_init=True)
    def load(self) -> None:
        """Read the run's changes and mask (also after each of the run's merges)."""
        if self.run_id is None:
            self.param.update(changes=None, mask=None)
            return
        changes = self._source.pmt_changes(self.run_id)
        if changes is None or self.changes is None or not _same(changes, self.changes):
            self.changes = changes
        mask = self._source.mask_for_run(self.run_id)
        if mask != self.mask:
            self.mask = mask
        masks = self._source.pmt_masks()
        if not masks.equals(self.masks):
            self.masks = masks
        if self.pmt_id is not None:
            self._load_history()

    def search(self, text: str | int) -> None:
        """Show a PMT's history; a bad id leaves the last one shown and says why."""
        try:
            pmt = pmtstatus.parse_pmt_id(text)
        except DQMError as exc:
            self.message = str(exc)
            return
        self.pmt_id = pmt
        self._load_history()

    @param.depends("same_type_only", watch=True)
    def _load_history(self) -> None:
        if self.pmt_id is None:
            return
        run_type = self.run_type if self.same_type_only else None
        try:
            history, first_dead = self._source.pmt_history(self.pmt_id, run_type)
        except DQMError as exc:
            self.message = str(exc)
            return
        where = f" of {run_type} runs" if run_type else ""
        self.param.update(
            history=history,
            first_dead_run=first_dead,
            message=""
            if len(history)
            else f"PMT {self.pmt_id} has no statistics in any run{where}.",
        )

    def derive_mask(self, consecutive: int, comment: str = "") -> None:
        """A new mask version from the history up to this run: the PMTs dead in each of the
        ``consecutive`` latest runs of its type, valid from the next run (experts only)."""
        if self.run_id is None or self.run_type is None:
            self.notice = "Not saved: the run has no PMT status to derive a mask from."
            return
        self._write(
            lambda: self._source.derive_mask(
                run_type=self.run_type,
                until_run=self.run_id,
                consecutive=consecutive,
                actor=self.actor,
                comment=comment,
            )
        )

    def edit_mask(self, valid_from_run: int | None, add: str, remove: str, comment: str) -> None:
        """A new mask version by hand, valid from ``valid_from_run`` (default: this run)."""
        start = self.run_id if valid_from_run is None else valid_from_run
        if start is None:
            self.notice = "Not saved: say from which run the mask is valid."
            return
        self._write(
            lambda: self._source.edit_mask(
                valid_from_run=start, add=add, remove=remove, actor=self.actor, comment=comment
            )
        )

    def _write(self, write: Any) -> None:
        try:
            version = write()
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        self.load()
        masks = self.masks
        row = masks[masks["version"] == version]
        n, start = (int(row["n_masked"].iloc[0]), int(row["valid_from_run"].iloc[0]))
        self.notice = f"Saved mask version {version}: {n} PMT(s), valid from run {start} on."


def _same(a: PmtChangeSummary, b: PmtChangeSummary) -> bool:
    return (a.run_id, a.updated_at, a.previous_run) == (b.run_id, b.updated_at, b.previous_run)


class RunState(Acting):
    """One run: its summary, files, histograms by stage, PMT cuts, and a reference run."""

    source = param.ClassSelector(class_=Source, doc="Where the run is read from.")
    run_id = param.Integer(default=None, allow_None=True, doc="The run shown.")
    reference_run_id = param.Integer(
        default=None, allow_None=True, doc="The run overlaid on the histograms (None: none)."
    )
    summary = param.ClassSelector(
        class_=RunSummary, allow_None=True, doc="Attributes, files, provenance."
    )
    histograms = param.Dict(default={}, doc="Stage → the run's stored histograms.")
    reference = param.Dict(default={}, doc="Stage → name → the reference run's histogram.")
    pmt = param.ClassSelector(class_=PmtCuts, allow_None=True, doc="PMT classes and cuts.")
    message = param.String(default="", doc="Why nothing is shown.")
    cut_defaults = param.Dict(
        default=None, allow_None=True, doc="The cuts saved for the run's type (and by whom)."
    )
    notice = param.String(default="", doc="The outcome of the last change (saved, or why not).")
    analyses = param.List(
        default=[], doc="The run's analyses (app.source.RunAnalysis): results and their jobs."
    )
    checks = param.ClassSelector(
        class_=RunChecks, allow_None=True, doc="The run's quality and its checks' results."
    )
    certification = param.ClassSelector(
        class_=RunCertification,
        allow_None=True,
        doc="The run's sign-off: its state, the form, the decisions.",
    )
    comments = param.DataFrame(
        default=pd.DataFrame(columns=COMMENT_COLUMNS),
        doc="The run's comments, oldest first (app.source.COMMENT_COLUMNS).",
    )
    pmt_history = param.ClassSelector(
        class_=PmtHistoryState, doc="The run's PMT changes, the PMT search and the masks."
    )
    kept_events = param.ClassSelector(
        class_=EventsState,
        doc="The event display: the run's kept raw events, read when the Events tab is opened.",
    )

    # What the run looked like when last read (Source.run_token), and its events as read then.
    _token: tuple[object, ...] | None
    _events: tuple[tuple[int | None, tuple[object, ...] | None], pd.DataFrame]

    @property
    def _source(self) -> Source:
        """:attr:`source`, which the app always gives (param types the parameter as optional)."""
        assert self.source is not None, "RunState is read from a Source"
        return self.source

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.pmt_history is None:
            self.pmt_history = PmtHistoryState(
                source=self.source, user=self.user, role=self.role, run_id=self.run_id
            )
        if self.kept_events is None and self.source is not None:
            self.kept_events = EventsState(loader=self.source.kept_events)

    def open_events(self) -> None:
        """Read the run's kept events for the event display (when its tab is shown): once a run,
        and again when the run has changed since (more files done)."""
        assert self.kept_events is not None
        if self.kept_events.run_id != self.run_id:
            self.kept_events.run_id = self.run_id
        elif getattr(self, "_events_token", None) != self._token:
            self.kept_events.load()
        self._events_token = self._token

    @param.depends("run_id", watch=True, on_init=True)
    def load(self) -> None:
        """Read the run (also called periodically while the run is processing)."""
        self._token = None
        self.refresh()

    def refresh(self) -> None:
        """Read the run again if anything about it changed since it was last read (a few
        aggregate queries otherwise: many sessions can refresh often)."""
        token = None if self.run_id is None else self._source.run_token(self.run_id)
        if token is not None and token == getattr(self, "_token", None):
            return
        self._token = token
        if self.run_id is None:
            self.summary, self.histograms, self.message = None, {}, "Choose a run."
            self.analyses, self.checks, self.certification = [], None, None
            return
        summary = self._source.run_summary(self.run_id)
        if summary is None:
            self.summary, self.histograms, self.analyses, self.checks = None, {}, [], None
            self.certification = None
            self.message = f"There is no run {self.run_id} in the database."
            return
        self.message = ""
        # A periodic refresh changes only what changed, so that a finished run's plots, tables
        # and PMT map stay as they are (zoom, sorting, scroll position) and a processing run's
        # fill in as its files complete.
        if summary != self.summary:
            self.summary = summary
        histograms = {
            stage: self._source.histograms(self.run_id, stage) for stage in ("calib", "rec")
        }
        if _signature(histograms) != _signature(self.histograms):
            self.histograms = histograms
        analyses = self._source.run_analyses(self.run_id)
        if analyses != self.analyses:
            self.analyses = analyses
        checks = self._source.run_checks(self.run_id)
        if checks != self.checks:
            self.checks = checks
        certification = self._source.run_certification(self.run_id)
        if certification != self.certification:
            self.certification = certification
        comments = self._source.run_comments(self.run_id)
        if not comments.equals(self.comments):
            self.comments = comments
        quantities = self._source.pmt_quantities(self.run_id)
        if quantities is None:
            self.pmt = None
        elif self.pmt is None or self.pmt.run_id != self.run_id:
            self.cut_defaults = self._source.cut_defaults(summary.run_type)
            cuts = {
                k: v
                for k, v in (self.cut_defaults or {}).items()
                if k in ("dead_cut", "hot_cut", "normal_band")
            }
            self.pmt = PmtCuts.from_arrays(
                quantities["hit_rate"], quantities["mean_charge_pe"], run_id=self.run_id, **cuts
            )
        elif not np.array_equal(
            quantities["hit_rate"], self.pmt.hit_rate_values(), equal_nan=True
        ) or not np.array_equal(
            quantities["mean_charge_pe"], self.pmt.mean_charge_values(), equal_nan=True
        ):
            self.pmt.set_statistics(
                quantities["hit_rate"], quantities["mean_charge_pe"], run_id=self.run_id
            )
        if self.pmt_history is not None:
            if self.pmt_history.run_id != self.run_id:
                self.pmt_history.run_id = self.run_id
            else:
                self.pmt_history.load()
        default_reference = self._source.reference_run(self.run_id)
        if self.reference_run_id in (None, self.run_id):
            self.reference_run_id = default_reference

    def events(self) -> pd.DataFrame:
        """The run's reconstructed events (see Source.run_events), read when first asked for and
        again only after the run changed."""
        token = getattr(self, "_token", None)
        cached = getattr(self, "_events", None)
        if cached is None or cached[0] != (self.run_id, token):
            assert self.run_id is not None  # the events are drawn for a run shown
            self._events = ((self.run_id, token), self._source.run_events(self.run_id))
        return self._events[1]

    def save_cuts_as_default(self) -> None:
        """Make the PMT map's cuts the default of the run's type (logged-in users only)."""
        if self.pmt is None or self.summary is None:
            self.notice = "There are no cuts to save: the run has no PMT statistics yet."
            return
        run_type = self.summary.run_type
        low, high = self.pmt.normal_band
        try:
            self._source.save_cut_defaults(
                run_type, self.pmt.dead_cut, self.pmt.hot_cut, (low, high), actor=self.actor
            )
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        self.cut_defaults = self._source.cut_defaults(run_type)
        self.notice = f"Saved as the default cuts of {run_type} runs."

    def set_comment(self, comment: str) -> None:
        """Replace the run's comment (logged-in users only)."""
        assert self.run_id is not None  # the comment editor is shown with a run
        try:
            self._source.set_run_comment(self.run_id, comment, actor=self.actor)
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        self.refresh()
        self.notice = "Comment saved."

    def set_tags(self, text: str) -> None:
        """Make the run's tags those of ``text`` (words separated by commas or blanks), recording
        what was added and removed (logged-in users only)."""
        assert self.run_id is not None and self.summary is not None  # the editor is on a run
        wanted = set(text.replace(",", " ").split())
        shown = set(self.summary.tags)
        try:
            tags = self._source.change_run_tags(
                self.run_id,
                actor=self.actor,
                add=sorted(wanted - shown),
                remove=sorted(shown - wanted),
            )
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        self.refresh()
        self.notice = f"Tags saved: {', '.join(tags) or 'none'}."

    def pin_reference(self, reference: str, *, for_type: bool, comment: str = "") -> None:
        """Pin a reference run for this run (a shifter) or for its run type (an expert); an empty
        ``reference`` lifts the pin. :attr:`notice` says how it went."""
        assert self.run_id is not None  # the form is on a run's page
        reference_id, problem = parse_run_id(reference)
        if problem:
            self.notice = f"Not pinned: {problem}"
            return
        try:
            self._source.pin_reference(
                self.run_id, reference_id, actor=self.actor, for_type=for_type, comment=comment
            )
        except DQMError as exc:
            self.notice = f"Not pinned: {exc}"
            return
        self._token = None
        self.refresh()
        scope = (
            f"{self.summary.run_type} runs" if for_type and self.summary else f"run {self.run_id}"
        )
        self.notice = (
            f"Reference of {scope}: run {reference_id}; the checks use it from their next evaluation."
            if reference_id is not None
            else f"Pin of {scope} lifted: the automatic choice holds again."
        )

    def add_comment(self, text: str, target: str = "run", parent_id: int | None = None) -> None:
        """Comment on the run, one of its histograms (``histogram:STAGE/NAME``) or a PMT
        (``pmt:ID``), or reply to a comment; :attr:`notice` says how it went."""
        assert self.run_id is not None  # the form is on a run's page
        try:
            self._source.add_comment(
                self.run_id, text, actor=self.actor, target=target, parent_id=parent_id
            )
        except DQMError as exc:
            self.notice = f"Comment not added: {exc}"
            return
        self.refresh()
        self.notice = "Comment added."

    def decide(self, action: str, comment: str, stages: dict[str, str] | None = None) -> None:
        """Sign the run off (``stages``: stage → Good or Bad), certify it, or send it back to
        sign-off (``reopen``); :attr:`notice` says how it went."""
        assert self.run_id is not None  # the form is on a run's page
        done = {"sign_off": "signed off", "certify": "certified", "reopen": "sent back to sign-off"}
        try:
            self._source.decide(
                self.run_id, action, actor=self.actor, comment=comment, stages=stages
            )
        except DQMError as exc:
            self.notice = f"Run {self.run_id} not {done.get(action, action)}: {exc}"
            return
        self.refresh()
        state = self.certification.description if self.certification else ""
        self.notice = f"Run {self.run_id} {done[action]}: {state}."

    def analysis_figure(self, result_id: int, name: str) -> bytes:
        """A figure of one of the run's analysis results, as PNG (read when shown)."""
        return self._source.analysis_figure(result_id, name)

    @param.depends("reference_run_id", watch=True, on_init=True)
    def load_reference(self) -> None:
        if self.reference_run_id is None:
            self.reference = {}
            return
        self.reference = {
            stage: {h.name: h for h in self._source.histograms(self.reference_run_id, stage)}
            for stage in ("calib", "rec")
        }

    def report(self) -> io.BytesIO:
        """The run's report (``dqm report``): one self-contained HTML file, in memory."""
        assert self.run_id is not None  # downloaded from a run's page
        return self._source.run_report(self.run_id)

    def root_file(self) -> io.BytesIO:
        """The run exported as a ROOT file (``dqm export``), in memory."""
        assert self.run_id is not None  # downloaded from a run's page
        return self._source.root_file(self.run_id)


class JobsState(Acting):
    """The jobs page: jobs per state, run times per kind, the latest failures and changes.

    Read by :meth:`refresh`, which the app calls when the page is shown and periodically while it
    is; nothing is read at construction (most sessions never open the page).
    """

    source = param.ClassSelector(class_=Source, doc="Where the jobs are read from.")
    counts = param.Dict(default={}, doc="Jobs per state.")
    durations = param.DataFrame(
        default=pd.DataFrame(),
        doc="Run time of the latest done jobs per kind: count, median, p95 and longest (s).",
    )
    failures = param.DataFrame(default=pd.DataFrame(), doc="Latest failed jobs, with reasons.")
    changes = param.DataFrame(default=pd.DataFrame(), doc="Latest changes made here.")
    backfills = param.DataFrame(
        default=pd.DataFrame(columns=BACKFILL_COLUMNS),
        doc="The latest backfills with their progress (app.source.BACKFILL_COLUMNS).",
    )
    notice = param.String(default="", doc="The outcome of the last retry.")
    retry_reason = param.String(
        default="",
        doc="Why a job is retried: recorded with the retry, and needed to reprocess a certified "
        "run (which goes back to sign-off).",
    )

    @property
    def _source(self) -> Source:
        """:attr:`source`, which the app always gives (param types the parameter as optional)."""
        assert self.source is not None, "JobsState is read from a Source"
        return self.source

    def refresh(self) -> None:
        """Read the jobs' figures again."""
        self.counts = self._source.job_counts()
        self.failures = self._source.recent_failures()
        self.durations = self._source.job_durations()
        self.changes = self._source.recent_changes()
        backfills = self._source.backfills()
        if not backfills.equals(self.backfills):
            self.backfills = backfills

    def retry(self, job_id: int) -> None:
        """Put a failed job back to TODO (logged-in users only); :attr:`notice` says how it went."""
        try:
            self._source.retry_job(job_id, actor=self.actor, reason=self.retry_reason.strip())
        except DQMError as exc:
            self.notice = f"Job {job_id} not retried: {exc}"
            return
        self.refresh()
        self.retry_reason = ""
        self.notice = f"Job {job_id} is back to TODO: the job server will run it again."


class AlarmsState(Acting):
    """The alarms: the count not acknowledged (the banner on every page) and the Alarms page's
    table with its filters, an alarm's history, and acknowledging or closing one.

    :meth:`refresh_counts` is cheap (one token query when nothing changed) and runs on every
    page; :meth:`refresh` reads the table, when the Alarms page is shown.
    """

    source = param.ClassSelector(class_=Source, doc="Where the alarms are read from.")
    states = param.ListSelector(
        default=[AlarmState.OPEN.value, AlarmState.ACKNOWLEDGED.value],
        objects=[s.value for s in AlarmState],
        doc="Only alarms in these states (all if empty).",
    )
    severity: param.Selector[str] = param.Selector(
        objects=["", Quality.BAD.value, Quality.WARNING.value],
        default="",
        doc="Only this severity.",
    )
    run = param.String(default="", doc="Only the alarms of this run.")
    alarms = param.DataFrame(
        default=pd.DataFrame(columns=ALARM_COLUMNS), doc="The alarms shown, newest first."
    )
    selected = param.Integer(default=None, allow_None=True, doc="The alarm whose history is shown.")
    history = param.DataFrame(default=pd.DataFrame(), doc="The selected alarm's history.")
    open_counts = param.Dict(default={}, doc="Alarms open (not acknowledged), by severity.")
    acknowledged_counts = param.Dict(default={}, doc="Alarms acknowledged, by severity.")
    message = param.String(default="", doc="Why nothing is shown.")
    notice = param.String(default="", doc="The outcome of the last acknowledgement or closing.")

    _token: tuple[object, ...] | None = None

    @property
    def n_open(self) -> int:
        return sum(self.open_counts.values())

    @property
    def _source(self) -> Source:
        assert self.source is not None, "AlarmsState is read from a Source"
        return self.source

    def refresh_counts(self) -> bool:
        """Read the counts again if any alarm changed; returns whether one did."""
        token = self._source.alarms_token()
        if token == self._token:
            return False
        self._token = token
        counts = self._source.alarm_counts()
        if counts["open"] != self.open_counts:
            self.open_counts = counts["open"]
        if counts["acknowledged"] != self.acknowledged_counts:
            self.acknowledged_counts = counts["acknowledged"]
        return True

    @param.depends("states", "severity", "run", watch=True)
    def refresh(self) -> None:
        """Read the table (and the selected alarm's history) again."""
        self.refresh_counts()
        run_id, problem = parse_run_id(self.run)
        if problem:
            self.message = problem
            self.alarms = self.alarms.iloc[0:0]
            return
        alarms = self._source.alarms(
            states=list(self.states) or None,
            severity=self.severity or None,
            run_id=run_id,
        )
        if not alarms.equals(self.alarms):
            self.alarms = alarms
        self.message = "" if len(alarms) else "No alarm matches these filters."
        self.show(self.selected)

    def show(self, alarm_id: int | None) -> None:
        """Show an alarm's history."""
        if alarm_id is None:
            self.param.update(selected=None, history=pd.DataFrame())
            return
        try:
            history = self._source.alarm_history(alarm_id)
        except DQMError as exc:
            self.param.update(notice=str(exc), selected=None, history=pd.DataFrame())
            return
        if alarm_id != self.selected or not history.equals(self.history):
            self.param.update(selected=alarm_id, history=history)  # one new detail, not two

    def acknowledge(self, alarm_id: int | None, comment: str) -> None:
        """Acknowledge an alarm (a login and a comment needed)."""
        self._act("acknowledged", self._source.acknowledge_alarm, alarm_id, comment)

    def close(self, alarm_id: int | None, comment: str) -> None:
        """Close an alarm by hand, with a comment."""
        self._act("closed", self._source.close_alarm, alarm_id, comment)

    def _act(self, done: str, action: Any, alarm_id: int | None, comment: str) -> None:
        if alarm_id is None:
            self.notice = "Choose an alarm in the table first."
            return
        try:
            action(alarm_id, actor=self.actor, comment=comment)
        except DQMError as exc:
            self.notice = f"Alarm {alarm_id} not {done}: {exc}"
            return
        self.selected = alarm_id
        self.refresh()
        self.notice = f"Alarm {alarm_id} {done}."


class OverviewState(param.Parameterized):
    """The shift overview: one screen of tiles (the run taking data, the processing lag, the open
    alarms, the last runs' quality, the runs waiting for sign-off, the job server's and the
    database's health), read again by :meth:`refresh`; a tile that cannot be read holds
    ``{"error": ...}`` (app.source.Source.overview)."""

    source = param.ClassSelector(class_=Source, doc="Where the tiles are read from.")
    tiles = param.Dict(default={}, doc="Tile name → its data (app.source.TILES).")

    def refresh(self) -> None:
        assert self.source is not None, "OverviewState is read from a Source"
        tiles = self.source.overview()
        if tiles != self.tiles:
            self.tiles = tiles


class CalibrationsState(param.Parameterized):
    """The calibrations page: every version with its validity and mean constants, one version's
    constants per PMT, and the PMTs that moved against another version (by default the one
    before)."""

    source = param.ClassSelector(class_=Source, doc="Where the calibrations are read from.")
    versions = param.DataFrame(
        default=pd.DataFrame(columns=CALIBRATION_COLUMNS), doc="Every version, oldest first."
    )
    version = param.Integer(default=None, allow_None=True, doc="The version shown.")
    other = param.Integer(
        default=None, allow_None=True, doc="The version it is compared with (None: none)."
    )
    quantity: param.Selector[str] = param.Selector(
        objects=["gain", "offset_ns"], default="gain", doc="What the map and histogram show."
    )
    constants = param.DataFrame(
        default=pd.DataFrame(), doc="The version's constants per PMT, with map coordinates."
    )
    moved = param.DataFrame(default=pd.DataFrame(), doc="The PMTs that moved against `other`.")
    message = param.String(default="", doc="Why nothing is shown.")

    @property
    def _source(self) -> Source:
        assert self.source is not None, "CalibrationsState is read from a Source"
        return self.source

    def refresh(self) -> None:
        """Read the versions again (the newest shown, compared with the one before, at first)."""
        versions = self._source.calibrations()
        if not versions.equals(self.versions):
            self.versions = versions
        if versions.empty:
            self.message = "No calibration is stored yet: a laser run makes the first."
            return
        self.message = ""
        known = [int(v) for v in versions["version"]]
        if self.version not in known:
            newest = known[-1]
            self.param.update(version=newest, other=known[-2] if len(known) > 1 else None)

    @param.depends("version", "other", watch=True)
    def _load(self) -> None:
        if self.version is None:
            self.param.update(constants=pd.DataFrame(), moved=pd.DataFrame())
            return
        try:
            constants = self._source.calibration_map(self.version)
            moved = (
                self._source.compare_calibrations(self.other, self.version)
                if self.other is not None and self.other != self.version
                else pd.DataFrame()
            )
        except DQMError as exc:
            self.param.update(message=str(exc), constants=pd.DataFrame(), moved=pd.DataFrame())
            return
        self.param.update(constants=constants, moved=moved, message="")
