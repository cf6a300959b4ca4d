"""The check editor as state: a check's thresholds, or a run type's PMT cut defaults, tried on
past runs (back-testing) before they are saved.

A ``param`` class without widgets, usable and testable without Panel or Bokeh (neither is
imported); :class:`app.editorview.EditorView` is its view. Back-testing reads and judges the runs
and stores nothing (anyone may); saving needs the expert role, and is offered only for the very values the table was
made for (see them, then save): a check's values become its next version, the cuts the run
type's defaults, both recorded in the changes.

Example (in a notebook)::

    editor = EditorState(source=Source(url), user="alice")
    editor.check = "calib_mean_charge"
    editor.values = {**editor.values, "warning_band": "1.2, 1.5"}
    editor.try_check()
    editor.result.rows, editor.result.summary
    editor.save_check("narrower after the HV change")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import param

from app.source import Backtest, CheckInfo, Progress, Source
from app.state import Acting
from dqm.errors import DQMError
from dqm.messages import RUN_TYPES
from dqm.pmtclass import DEFAULT_CUTS, HitRateCuts

__all__ = ["EditorState"]


class EditorState(Acting):
    """A check's parameters, or a run type's PMT cuts, as edited, and the back-test of them.

    Inputs: :attr:`check` and its :attr:`values` (text, as ``dqm checks backtest --set``
    takes them); :attr:`run_type` and the four cuts; :attr:`n_runs`. Outputs: :attr:`result`
    (the table of the last back-test), :attr:`done` of :attr:`total` while one runs, and
    :attr:`notice` (one sentence: what happened, or why not).
    """

    source = param.ClassSelector(class_=Source, doc="Where the checks and the runs are read.")
    checks = param.List(default=[], doc="Every check as it holds now (app.source.CheckInfo).")
    check = param.String(default="", doc="The check edited ('' for none).")
    values = param.Dict(default={}, doc="The edited check's parameters, name → text.")
    run_type: param.Selector[str] = param.Selector(
        objects=list(RUN_TYPES), default="physics", doc="The run type whose PMT cuts are edited."
    )
    dead_cut = param.Number(default=DEFAULT_CUTS.dead_cut, bounds=(0.0, 1.0), doc="Dead below.")
    hot_cut = param.Number(default=DEFAULT_CUTS.hot_cut, bounds=(0.0, 1.0), doc="Hot above.")
    normal_low = param.Number(
        default=DEFAULT_CUTS.normal_band[0], bounds=(0.0, 1.0), doc="Normal band, low end."
    )
    normal_high = param.Number(
        default=DEFAULT_CUTS.normal_band[1], bounds=(0.0, 1.0), doc="Normal band, high end."
    )
    saved_cuts = param.String(default="", doc="The run type's cuts as saved, in one sentence.")
    n_runs = param.Integer(default=50, bounds=(1, 1000), doc="How many past runs to judge.")
    comment = param.String(default="", doc="Why the change is saved (kept in the changes).")
    result = param.ClassSelector(
        class_=Backtest, allow_None=True, doc="The last back-test (None: none yet)."
    )
    result_of = param.Parameter(
        default=(), doc="What the last back-test tried ('check', name, values) or ('cuts', …)."
    )
    running = param.Boolean(default=False, doc="Whether a back-test is under way.")
    done = param.Integer(default=0, doc="Runs judged so far by the back-test under way.")
    total = param.Integer(default=0, doc="Runs the back-test under way judges.")
    notice = param.String(default="", doc="What happened last, or why not.")

    @property
    def _source(self) -> Source:
        assert self.source is not None, "EditorState is read from a Source"
        return self.source

    @property
    def info(self) -> CheckInfo | None:
        """The check edited, as it holds now."""
        return next((c for c in self.checks if c.name == self.check), None)

    def load(self) -> None:
        """Read the checks (and the cuts of the run type) again."""
        try:
            checks = self._source.checks()
        except DQMError as exc:
            self.param.update(checks=[], notice=f"The checks cannot be read: {exc}")
            return
        if checks != self.checks:
            self.checks = checks
        if self.check and self.info is None:
            self.check = ""
        self._cuts_of_type()

    @param.depends("check", watch=True)
    def _check_chosen(self) -> None:
        info = self.info
        self.param.update(
            values={p.name: p.value for p in info.parameters} if info else {},
            result=None,
            result_of=(),
            notice="",
        )

    @param.depends("run_type", watch=True)
    def _cuts_of_type(self) -> None:
        saved = self._source.cut_defaults(self.run_type)
        if saved:
            low, high = saved["normal_band"]
            self.param.update(
                dead_cut=saved["dead_cut"],
                hot_cut=saved["hot_cut"],
                normal_low=low,
                normal_high=high,
                saved_cuts=(
                    f"The cuts of {self.run_type} runs were saved by {saved['saved_by']}: "
                    f"{HitRateCuts(saved['dead_cut'], saved['hot_cut'], (low, high)).describe()}."
                ),
            )
        else:
            self.param.update(
                dead_cut=DEFAULT_CUTS.dead_cut,
                hot_cut=DEFAULT_CUTS.hot_cut,
                normal_low=DEFAULT_CUTS.normal_band[0],
                normal_high=DEFAULT_CUTS.normal_band[1],
                saved_cuts=(
                    f"{self.run_type.capitalize()} runs use the built-in cuts: "
                    f"{DEFAULT_CUTS.describe()}."
                ),
            )

    def use_cuts(self, run_type: str, cuts: HitRateCuts) -> None:
        """Edit these cuts of this run type (from the PMT map's sliders)."""
        self.run_type = run_type  # reads the type's saved cuts first, then:
        low, high = cuts.normal_band
        self.param.update(
            dead_cut=cuts.dead_cut,
            hot_cut=cuts.hot_cut,
            normal_low=low,
            normal_high=high,
            notice=f"The cuts of the PMT map, ready to back-test on past {run_type} runs.",
        )

    def proposed_cuts(self) -> HitRateCuts:
        """The cuts as edited.

        Raises:
            InvalidValueError: a cut outside [0, 1].
        """
        return HitRateCuts(self.dead_cut, self.hot_cut, (self.normal_low, self.normal_high))

    def _cuts_key(self) -> tuple[Any, ...]:
        return (
            "cuts",
            self.run_type,
            self.dead_cut,
            self.hot_cut,
            self.normal_low,
            self.normal_high,
        )

    def _check_key(self) -> tuple[Any, ...]:
        return ("check", self.check, tuple(sorted(self.values.items())))

    @property
    def can_save_check(self) -> bool:
        """Whether the values edited are those the table shows (they must be seen first)."""
        return bool(self.check) and bool(self.result_of == self._check_key())

    @property
    def can_save_cuts(self) -> bool:
        """Whether the cuts edited are those the table shows."""
        return bool(self.result_of == self._cuts_key())

    def _changed(self) -> dict[str, str]:
        info = self.info
        assert info is not None
        now = {p.name: p.value for p in info.parameters}
        return {k: v.strip() for k, v in self.values.items() if v.strip() != now.get(k)}

    def _run(self, what: tuple[Any, ...], job: Callable[[Progress], Backtest]) -> None:
        self.param.update(running=True, done=0, total=0, notice="")

        def progress(done: int, total: int) -> None:
            self.param.update(done=done, total=total)

        try:
            result = job(progress)
        except DQMError as exc:
            self.param.update(running=False, notice=f"Not tried: {exc}")
            return
        self.param.update(running=False, result=result, result_of=what, notice=result.summary)

    def try_check(self) -> None:
        """Back-test the check with the values edited on the latest :attr:`n_runs` runs."""
        if self.info is None:
            self.notice = "Choose a check first."
            return
        settings = self._changed()
        self._run(
            self._check_key(),
            lambda progress: self._source.backtest_check(
                self.check, settings, n_runs=self.n_runs, progress=progress
            ),
        )

    def try_cuts(self) -> None:
        """Back-test the cuts edited on the latest :attr:`n_runs` runs of :attr:`run_type`."""
        try:
            cuts = self.proposed_cuts()
        except DQMError as exc:
            self.notice = f"Not tried: {exc}"
            return
        self._run(
            self._cuts_key(),
            lambda progress: self._source.backtest_cuts(
                self.run_type, cuts, n_runs=self.n_runs, progress=progress
            ),
        )

    def save_check(self, comment: str | None = None) -> None:
        """Save the values back-tested as the check's next version (a login needed)."""
        comment = self.comment if comment is None else comment
        if not self.can_save_check:
            self.notice = "Not saved: back-test these values first, and look at the table."
            return
        try:
            version = self._source.save_check(
                self.check, self._changed(), actor=self.actor, comment=comment
            )
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        name = self.check
        self.load()
        self._check_chosen()
        self.notice = (
            f"Check {name} saved as version {version}: the job server judges runs with it from "
            f"their next evaluation; `dqm checks rerun` judges past runs again."
        )

    def save_cuts(self) -> None:
        """Save the cuts back-tested as the run type's defaults (a login needed)."""
        if not self.can_save_cuts:
            self.notice = "Not saved: back-test these cuts first, and look at the table."
            return
        try:
            self._source.save_cut_defaults(
                self.run_type,
                self.dead_cut,
                self.hot_cut,
                (self.normal_low, self.normal_high),
                actor=self.actor,
            )
        except DQMError as exc:
            self.notice = f"Not saved: {exc}"
            return
        run_type = self.run_type
        self._cuts_of_type()
        self.param.update(result_of=())
        self.notice = f"Saved as the default cuts of {run_type} runs."
