"""State of the dashboard: ``param.Parameterized`` classes with input parameters (search mode,
run number, reference run, …) and output parameters (the runs table, a run's summary and
histograms) computed from the database through :class:`app.source.Source`. No widgets: these are
testable without a server or a browser, and the views (:mod:`app.views`) only read them.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import param

from app.pmtmap import PmtCuts
from app.source import RUN_COLUMNS, Source, StoredHistogram
from dqm.db.models import RunStatus
from dqm.db.session import transaction
from dqm.errors import DQMError

#: Search modes of the recent-runs page.
MODES = ("Recent Runs", "Recent Completed", "Recent Days")
#: Tabs of the run page, as they appear in the URL.
RUN_TABS = ("base", "calib", "rec", "pmt")


def parse_run_id(text: str | int | None) -> tuple[int | None, str]:
    """A run number from user input (URL, search box): ``(run_id, "")`` or ``(None, reason)``."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, ""
    value = str(text).strip()
    if not value.isdigit():
        return None, f"'{value[:40]}' is not a run number: run numbers are positive integers."
    return int(value), ""


class RecentRuns(param.Parameterized):
    """The recent-runs table: search mode, filters and the resulting runs."""

    source = param.ClassSelector(class_=Source, doc="Where the runs are read from.")
    mode = param.Selector(objects=list(MODES), default=MODES[0], doc="Search mode.")
    n_runs = param.Integer(default=50, bounds=(1, 100_000), doc="Runs shown in the Recent modes.")
    days = param.Number(default=7.0, bounds=(0.0, 3650.0), doc="Days back in Recent Days mode.")
    statuses = param.ListSelector(
        default=[], objects=[s.value for s in RunStatus], doc="Only these statuses (all if empty)."
    )
    run_types = param.ListSelector(default=[], objects=[], doc="Only these run types.")
    search = param.String(default="", doc="A run number to look for.")
    runs = param.DataFrame(default=pd.DataFrame(columns=RUN_COLUMNS), doc="The runs found.")
    message = param.String(default="", doc="Why nothing is shown, or what was wrong.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.param.run_types.objects = self.source.run_types() if self.source else []
        self.refresh()

    @param.depends("mode", "n_runs", "days", "statuses", "run_types", "search", watch=True)
    def refresh(self) -> None:
        """Read the runs again (also called periodically by the served app)."""
        run_id, problem = parse_run_id(self.search)
        if problem:
            self.message = problem
            self.runs = self.runs.iloc[0:0]
            return
        try:
            self.runs = self.source.recent_runs(
                mode=self.mode,
                limit=self.n_runs,
                days=self.days,
                statuses=list(self.statuses),
                run_types=list(self.run_types),
                run_id=run_id,
            )
        except DQMError as exc:
            self.message = str(exc)
            return
        if run_id is not None and self.runs.empty:
            self.message = f"There is no run {run_id}."
        elif self.runs.empty:
            self.message = "No run matches these filters."
        else:
            self.message = ""


class RunState(param.Parameterized):
    """One run: its summary, files, histograms by stage, PMT cuts, and a reference run."""

    source = param.ClassSelector(class_=Source, doc="Where the run is read from.")
    run_id = param.Integer(default=None, allow_None=True, doc="The run shown.")
    reference_run_id = param.Integer(
        default=None, allow_None=True, doc="The run overlaid on the histograms (None: none)."
    )
    summary = param.Dict(default=None, allow_None=True, doc="Attributes, files, provenance.")
    histograms = param.Dict(default={}, doc="Stage → the run's stored histograms.")
    reference = param.Dict(default={}, doc="Stage → name → the reference run's histogram.")
    pmt = param.ClassSelector(class_=PmtCuts, allow_None=True, doc="PMT classes and cuts.")
    message = param.String(default="", doc="Why nothing is shown.")

    @param.depends("run_id", watch=True, on_init=True)
    def load(self) -> None:
        """Read the run (also called periodically while the run is processing)."""
        if self.run_id is None:
            self.summary, self.histograms, self.message = None, {}, "Choose a run."
            return
        summary = self.source.run_summary(self.run_id)
        if summary is None:
            self.summary, self.histograms = None, {}
            self.message = f"There is no run {self.run_id} in the database."
            return
        self.message = ""
        self.summary = summary
        self.histograms = {
            stage: self.source.histograms(self.run_id, stage) for stage in ("calib", "rec")
        }
        quantities = self.source.pmt_quantities(self.run_id)
        if quantities is None:
            self.pmt = None
        elif self.pmt is None or self.pmt.run_id != self.run_id:
            self.pmt = PmtCuts.from_arrays(
                quantities["hit_rate"], quantities["mean_charge_pe"], run_id=self.run_id
            )
        else:
            self.pmt.param.update(
                hit_rate=quantities["hit_rate"], mean_charge_pe=quantities["mean_charge_pe"]
            )
        default_reference = self.source.reference_run(self.run_id)
        if self.reference_run_id in (None, self.run_id):
            self.reference_run_id = default_reference

    @param.depends("reference_run_id", watch=True, on_init=True)
    def load_reference(self) -> None:
        if self.reference_run_id is None:
            self.reference = {}
            return
        self.reference = {
            stage: {h.name: h for h in self.source.histograms(self.reference_run_id, stage)}
            for stage in ("calib", "rec")
        }

    def stage_histograms(self, stage: str) -> list[StoredHistogram]:
        return list(self.histograms.get(stage, []))

    def root_file(self) -> io.BytesIO:
        """The run exported as a ROOT file (``dqm export``), in memory."""
        from dqm.rootexport import export_run

        with tempfile.TemporaryDirectory(prefix="dqm-export-") as tmp:
            path = Path(tmp) / f"run{self.run_id}.root"
            with transaction(self.source.database_url) as session:
                export_run(session, self.run_id, path)
            return io.BytesIO(path.read_bytes())
