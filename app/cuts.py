"""The PMT cuts of the dashboard as state: one run's per-PMT statistics, the cuts on the hit rate
and what follows from them (the class of every PMT, the counts, the flagged PMTs).

A ``param`` class without widgets, usable and testable without Panel or Bokeh (neither is
imported); the PMT map (:mod:`app.pmtmap`) is its view. The rule that classifies the PMTs and the
default cuts are those of :mod:`dqm.pmtclass`, which the pipeline's checks call too.

Loading a run's statistics from the database is not done here: the caller builds the state with
:meth:`PmtCuts.from_arrays` or updates an existing one with :meth:`PmtCuts.set_statistics`.

Example (in a notebook)::

    cuts = PmtCuts.from_arrays(hit_rate, mean_charge_pe, run_id=1234, dead_cut=0.02)
    cuts.n_dead, cuts.flagged()
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import param

from dqm.detector import load_pmts
from dqm.pmtclass import DEFAULT_CUTS, HOT, PMT_CLASSES, HitRateCuts, classify

__all__ = ["FLAGGED_COLUMNS", "PmtCuts"]

#: Columns of :meth:`PmtCuts.flagged` (and of the CSV download), in order.
FLAGGED_COLUMNS = ("pmt_id", "type", "theta_deg", "phi_deg", "hit_rate", "mean_charge_pe", "class")

#: Columns of the PMT table that the map needs.
GEOMETRY_COLUMNS = {"pmt_id", "type", "theta_deg", "phi_deg", "aitoff_x", "aitoff_y"}


def _per_pmt(values: np.ndarray | None, n_pmts: int, name: str) -> np.ndarray:
    """``values`` as float64 (NaN for a missing array), checked to hold one value per PMT."""
    if values is None:
        return np.full(n_pmts, np.nan)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n_pmts,):
        raise ValueError(
            f"{name} must hold one value per PMT ({n_pmts}), not an array of shape {values.shape}."
        )
    return values


class PmtCuts(param.Parameterized):
    """The dead/hot/normal cuts on the hit rate and the classes of one run's PMTs.

    Inputs are the three cuts (:attr:`dead_cut`, :attr:`hot_cut`, :attr:`normal_band`) and the data
    (:attr:`pmt_table`, :attr:`hit_rate`, :attr:`mean_charge_pe`, :attr:`run_id`); the outputs
    (:attr:`pmt_class`, the counts, :attr:`has_statistics`, :attr:`cut_warning`) are recomputed
    whenever a cut, the hit rates or the PMT table change, in a fraction of a millisecond for
    17,612 PMTs, and are set together in one batch (one event per change for a watcher of several).

    Cuts outside [0, 1] are refused (``ValueError``). Cuts that contradict each other (dead cut
    above the hot cut, a normal band reaching beyond them, a band whose ends are swapped) are kept
    as set, so that moving one slider never moves another; the classes stay well defined by the
    precedence dead, hot, normal, other, and :attr:`cut_warning` says in one sentence per problem
    what happens.

    The classes follow :func:`dqm.pmtclass.classify`; the defaults of the cuts are
    :data:`dqm.pmtclass.DEFAULT_CUTS`; pass others to the constructor or to :meth:`from_arrays`.
    """

    dead_cut = param.Number(
        default=DEFAULT_CUTS.dead_cut,
        bounds=(0.0, 1.0),
        label="Dead: hit rate below",
        doc="A PMT whose hit rate (fraction of events) is below this value is dead.",
    )
    hot_cut = param.Number(
        default=DEFAULT_CUTS.hot_cut,
        bounds=(0.0, 1.0),
        label="Hot: hit rate above",
        doc="A PMT whose hit rate (fraction of events) is above this value is hot.",
    )
    normal_band = param.Range(
        default=DEFAULT_CUTS.normal_band,
        bounds=(0.0, 1.0),
        label="Normal: hit rate within",
        doc="A PMT whose hit rate (fraction of events) lies in this band, ends included, is normal.",
    )

    pmt_table = param.DataFrame(
        default=None,
        columns=GEOMETRY_COLUMNS,
        doc=(
            "PMT geometry ordered by pmt_id, as from dqm.detector.load_pmts() (the default): "
            "pmt_id, type, theta_deg, phi_deg (degrees) and the Aitoff coordinates aitoff_x, "
            "aitoff_y (degrees). Treated as read-only."
        ),
    )
    hit_rate = param.Array(
        default=None,
        allow_None=True,
        doc=(
            "Fraction of the run's events in which each PMT fired, one value per row of "
            "pmt_table; None (or NaN for a PMT) when the run has no PMT statistics yet."
        ),
    )
    mean_charge_pe = param.Array(
        default=None,
        allow_None=True,
        doc="Mean charge per hit of each PMT in photo-electrons; None (or NaN) when unknown.",
    )
    run_id = param.Integer(
        default=None, allow_None=True, bounds=(0, None), doc="The run the statistics belong to."
    )

    pmt_class = param.Array(
        default=None,
        constant=True,
        doc=(
            "Class of each PMT as an int8 index into dqm.pmtclass.PMT_CLASSES (DEAD, HOT, "
            "NORMAL, OTHER)."
        ),
    )
    n_dead = param.Integer(default=0, bounds=(0, None), constant=True, doc="Number of dead PMTs.")
    n_hot = param.Integer(default=0, bounds=(0, None), constant=True, doc="Number of hot PMTs.")
    n_normal = param.Integer(
        default=0, bounds=(0, None), constant=True, doc="Number of normal PMTs."
    )
    n_other = param.Integer(
        default=0,
        bounds=(0, None),
        constant=True,
        doc="Number of PMTs in no other class, those without statistics included.",
    )
    n_no_data = param.Integer(
        default=0,
        bounds=(0, None),
        constant=True,
        doc="Number of PMTs without statistics (hit rate NaN or absent); counted in n_other.",
    )
    has_statistics = param.Boolean(
        default=False, constant=True, doc="Whether at least one PMT has a hit rate."
    )
    cut_warning = param.String(
        default="",
        constant=True,
        doc="What contradictory cuts do, one sentence per problem; empty when the cuts agree.",
    )

    def __init__(self, **params: Any) -> None:
        if params.get("pmt_table") is None:
            params["pmt_table"] = load_pmts()
        n_pmts = len(params["pmt_table"])
        for name in ("hit_rate", "mean_charge_pe"):
            if params.get(name) is not None:
                params[name] = _per_pmt(params[name], n_pmts, name)
        super().__init__(**params)

    # The PMT table and the classes, always set (the constructor loads the default table, and the
    # classes follow from it), though param types both parameters as optional.

    @property
    def _pmts(self) -> pd.DataFrame:
        assert self.pmt_table is not None
        return self.pmt_table

    @property
    def _classes(self) -> npt.NDArray[np.int8]:
        assert self.pmt_class is not None
        return self.pmt_class

    @classmethod
    def from_arrays(
        cls,
        hit_rate: np.ndarray | None,
        mean_charge_pe: np.ndarray | None,
        run_id: int | None = None,
        **cuts: Any,
    ) -> PmtCuts:
        """The state for one run's per-PMT arrays.

        Args:
            hit_rate: fraction of events in which each PMT fired, one value per PMT of
                ``load_pmts()`` (or of ``pmt_table`` when given in ``cuts``); None when the run has
                no PMT statistics yet.
            mean_charge_pe: mean charge per hit of each PMT in photo-electrons, or None.
            run_id: the run, for messages and the name of the CSV file.
            **cuts: ``dead_cut``, ``hot_cut``, ``normal_band`` (fractions of events) to start from
                instead of the defaults, and optionally ``pmt_table``.

        Raises:
            ValueError: an array does not hold one value per PMT, or a cut is outside [0, 1].
        """
        return cls(hit_rate=hit_rate, mean_charge_pe=mean_charge_pe, run_id=run_id, **cuts)

    def set_statistics(
        self,
        hit_rate: np.ndarray | None,
        mean_charge_pe: np.ndarray | None,
        run_id: int | None = None,
    ) -> None:
        """Show other statistics (a new run, or more files of the same run), keeping the cuts.

        The arrays are checked before anything changes and set in one batch, so the classes are
        computed once.

        Args:
            hit_rate: fraction of events in which each PMT fired, one value per PMT, or None.
            mean_charge_pe: mean charge per hit of each PMT in photo-electrons, or None.
            run_id: the run the arrays belong to.

        Raises:
            ValueError: an array does not hold one value per PMT.
        """
        n_pmts = len(self._pmts)
        self.param.update(
            hit_rate=None if hit_rate is None else _per_pmt(hit_rate, n_pmts, "hit_rate"),
            mean_charge_pe=(
                None
                if mean_charge_pe is None
                else _per_pmt(mean_charge_pe, n_pmts, "mean_charge_pe")
            ),
            run_id=run_id,
        )

    def hit_rate_values(self) -> np.ndarray:
        """The hit rate of every PMT (fraction of events) as float64, NaN where unknown."""
        return _per_pmt(self.hit_rate, len(self._pmts), "hit_rate")

    def mean_charge_values(self) -> np.ndarray:
        """The mean charge per hit of every PMT (PE) as float64, NaN where unknown."""
        return _per_pmt(self.mean_charge_pe, len(self._pmts), "mean_charge_pe")

    def pmt_class_names(self) -> np.ndarray:
        """The class of every PMT by name (``"dead"``, ``"hot"``, ``"normal"``, ``"other"``)."""
        return np.asarray(PMT_CLASSES)[self._classes]

    def hit_rate_cuts(self) -> HitRateCuts:
        """The cuts as set now, as :func:`dqm.pmtclass.classify` takes them."""
        low, high = self.normal_band
        return HitRateCuts(self.dead_cut, self.hot_cut, (low, high))

    @param.depends(
        "dead_cut", "hot_cut", "normal_band", "hit_rate", "pmt_table", watch=True, on_init=True
    )
    def _classify(self) -> None:
        cuts = self.hit_rate_cuts()
        result = classify(self.hit_rate_values(), cuts)
        with param.edit_constant(self):
            self.param.update(
                pmt_class=result.pmt_class,
                n_dead=result.n_dead,
                n_hot=result.n_hot,
                n_normal=result.n_normal,
                n_other=result.n_other,
                n_no_data=result.n_no_data,
                has_statistics=result.has_statistics,
                cut_warning=cuts.contradictions(),
            )

    def flagged(self) -> pd.DataFrame:
        """The dead and hot PMTs, dead first, each ordered by PMT id.

        Returns:
            One row per flagged PMT with the columns of :data:`FLAGGED_COLUMNS`: ``pmt_id``,
            ``type``, ``theta_deg`` and ``phi_deg`` (degrees), ``hit_rate`` (fraction of events),
            ``mean_charge_pe`` (PE, NaN when unknown) and ``class`` (``"dead"`` or ``"hot"``).
        """
        classes = self._classes
        index = np.flatnonzero(classes <= HOT)
        # A stable sort by class keeps the ids ascending within each class.
        index = index[np.argsort(classes[index], kind="stable")]
        table = self._pmts
        return pd.DataFrame(
            {
                "pmt_id": table["pmt_id"].to_numpy()[index],
                "type": table["type"].astype(str).to_numpy()[index],
                "theta_deg": table["theta_deg"].to_numpy()[index],
                "phi_deg": table["phi_deg"].to_numpy()[index],
                "hit_rate": self.hit_rate_values()[index],
                "mean_charge_pe": self.mean_charge_values()[index],
                "class": np.asarray(PMT_CLASSES, dtype=object)[classes[index]],
            },
            columns=list(FLAGGED_COLUMNS),
        )
