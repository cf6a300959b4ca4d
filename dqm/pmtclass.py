"""Classification of the large PMTs by their hit rate: dead, hot, normal or other.

The hit rate is the fraction of a run's events in which a PMT fired (see :mod:`dqm.pmtstats`).
Under the cuts of a :class:`HitRateCuts`, a PMT is

- **dead** when its hit rate is below the dead cut,
- **hot** when its hit rate is above the hot cut (and it is not dead),
- **normal** when its hit rate lies inside the normal band, ends included (and it is neither dead
  nor hot),
- **other** in every remaining case, which includes a PMT without statistics (hit rate NaN).

The precedence dead, hot, normal, other keeps the classes well defined when the cuts contradict
each other (dead cut above the hot cut, a normal band reaching beyond them or running backwards);
:meth:`HitRateCuts.contradictions` says in words what happens then.

A PMT is also **noisy** when its dark rate (from the pre-trigger window) is well above the nominal
rate of its type (:func:`noisy`, :data:`NOISY_FACTOR`): a property beside the class, since a
noisy PMT still counts as normal or other by its hit rate. Dead and hot PMTs are never noisy: a
hot PMT fires at any time of the readout window, so its pre-trigger rate is high too, and it
counts as hot.

This module is the one place for the rules and for the default cuts (:data:`DEFAULT_CUTS`): the
dashboard's PMT map and its trends over runs call :func:`classify`, and so can any other part of
the DQM, the job server's checks included: it needs numpy only.

Example::

    result = classify(hit_rate, HitRateCuts(dead_cut=0.02))
    result.n_dead, result.names()[:5]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from dqm.errors import InvalidValueError

__all__ = [
    "DEAD",
    "DEFAULT_CUTS",
    "HOT",
    "NOISY_FACTOR",
    "NOISY_SIGNIFICANCE",
    "NORMAL",
    "OTHER",
    "PMT_CLASSES",
    "HitRateCuts",
    "PmtClassification",
    "classify",
    "format_cut",
    "noisy",
]

#: The PMT classes, in order of precedence; :attr:`PmtClassification.pmt_class` holds their index.
PMT_CLASSES = ("dead", "hot", "normal", "other")
DEAD, HOT, NORMAL, OTHER = range(len(PMT_CLASSES))


def format_cut(value: float) -> str:
    """A cut (fraction of events) as shown to a reader: four significant digits at most."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class HitRateCuts:
    """The cuts on the hit rate (fractions of a run's events) that classify the PMTs.

    The defaults are the built-in cuts of the DQM; a run type may have others saved in the
    database. Cuts that contradict each other are allowed (see :meth:`contradictions`).

    Attributes:
        dead_cut: a PMT whose hit rate is below this is dead.
        hot_cut: a PMT whose hit rate is above this is hot.
        normal_band: (low, high); a PMT whose hit rate lies in it, ends included, is normal.

    Raises:
        InvalidValueError: a cut outside [0, 1] (or NaN).
    """

    dead_cut: float = 0.01
    hot_cut: float = 0.99
    normal_band: tuple[float, float] = (0.05, 0.15)

    def __post_init__(self) -> None:
        # Stored as plain floats whatever came in (numpy scalars, a list for the band).
        low, high = (float(v) for v in self.normal_band)
        object.__setattr__(self, "dead_cut", float(self.dead_cut))
        object.__setattr__(self, "hot_cut", float(self.hot_cut))
        object.__setattr__(self, "normal_band", (low, high))
        for name, value in (("dead cut", self.dead_cut), ("hot cut", self.hot_cut)):
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise InvalidValueError(f"{name} must lie in [0, 1], not {value}.")
        if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
            raise InvalidValueError(
                f"the normal band's ends must lie in [0, 1], not {low} and {high}."
            )

    def rules(self) -> dict[str, str]:
        """Each class's condition on the hit rate, in words: ``{"dead": "< 0.01", ...}``."""
        low, high = self.normal_band
        return {
            "dead": f"< {format_cut(self.dead_cut)}",
            "hot": f"> {format_cut(self.hot_cut)}",
            "normal": f"{format_cut(low)} to {format_cut(high)}",
            "other": "anything else",
        }

    def describe(self) -> str:
        """The cuts in one line: ``dead < 0.01, hot > 0.99, normal 0.05 to 0.15``."""
        rules = self.rules()
        return ", ".join(f"{name} {rules[name]}" for name in ("dead", "hot", "normal"))

    def contradictions(self) -> str:
        """What contradictory cuts do, one sentence per problem; empty when the cuts agree."""
        dead, hot = self.dead_cut, self.hot_cut
        low, high = self.normal_band
        problems = []
        if dead > hot:
            problems.append(
                f"The dead cut ({format_cut(dead)}) is above the hot cut ({format_cut(hot)}): "
                "PMTs between the two count as dead."
            )
        if low > high:
            problems.append(
                f"The normal band runs backwards ({format_cut(low)} to {format_cut(high)}): "
                "no PMT is normal."
            )
        else:
            if low < dead:
                problems.append(
                    f"The normal band starts ({format_cut(low)}) below the dead cut "
                    f"({format_cut(dead)}): PMTs under the dead cut count as dead, not normal."
                )
            if high > hot:
                problems.append(
                    f"The normal band ends ({format_cut(high)}) above the hot cut "
                    f"({format_cut(hot)}): PMTs over the hot cut count as hot, not normal."
                )
        return " ".join(problems)


#: The built-in cuts: dead below 1 % of the events, hot above 99 %, normal from 5 % to 15 %.
DEFAULT_CUTS = HitRateCuts()


@dataclass(frozen=True, eq=False)
class PmtClassification:
    """The class of every PMT under a set of cuts, and how many fell in each.

    Attributes:
        pmt_class: class of each PMT as an int8 index into :data:`PMT_CLASSES` (``DEAD``,
            ``HOT``, ``NORMAL``, ``OTHER``), in the order of the hit rates given.
        n_dead: number of dead PMTs.
        n_hot: number of hot PMTs.
        n_normal: number of normal PMTs.
        n_other: number of PMTs in no other class, those without statistics included.
        n_no_data: number of PMTs without statistics (hit rate NaN); counted in ``n_other``.
    """

    pmt_class: npt.NDArray[np.int8]
    n_dead: int
    n_hot: int
    n_normal: int
    n_other: int
    n_no_data: int

    @property
    def has_statistics(self) -> bool:
        """Whether at least one PMT has a hit rate."""
        return self.n_no_data < len(self.pmt_class)

    def counts(self) -> dict[str, int]:
        """The number of PMTs of each class, by name, in the order of :data:`PMT_CLASSES`."""
        return {
            "dead": self.n_dead,
            "hot": self.n_hot,
            "normal": self.n_normal,
            "other": self.n_other,
        }

    def names(self) -> npt.NDArray[np.str_]:
        """The class of every PMT by name (``"dead"``, ``"hot"``, ``"normal"``, ``"other"``)."""
        return np.asarray(PMT_CLASSES)[self.pmt_class]


def classify(hit_rate: ArrayLike, cuts: HitRateCuts = DEFAULT_CUTS) -> PmtClassification:
    """Classify PMTs by their hit rate (a fraction of a millisecond for 17,612 PMTs).

    Args:
        hit_rate: fraction of the run's events in which each PMT fired, one value per PMT;
            NaN for a PMT without statistics (it is then "other").
        cuts: the cuts; the built-in ones by default.

    Returns:
        The class of each PMT, in the order given, and the counts.

    Raises:
        ValueError: ``hit_rate`` is not a one-dimensional array of numbers.
    """
    rate = np.asarray(hit_rate, dtype=np.float64)
    if rate.ndim != 1:
        raise ValueError(
            f"hit_rate must hold one value per PMT, not an array of shape {rate.shape}."
        )
    low, high = cuts.normal_band
    classes = np.full(rate.shape, OTHER, dtype=np.int8)
    # Later assignments win: dead over hot over normal. NaN compares false: stays OTHER.
    classes[(rate >= low) & (rate <= high)] = NORMAL
    classes[rate > cuts.hot_cut] = HOT
    classes[rate < cuts.dead_cut] = DEAD
    counts = np.bincount(classes, minlength=len(PMT_CLASSES))
    return PmtClassification(
        pmt_class=classes,
        n_dead=int(counts[DEAD]),
        n_hot=int(counts[HOT]),
        n_normal=int(counts[NORMAL]),
        n_other=int(counts[OTHER]),
        n_no_data=int(np.count_nonzero(np.isnan(rate))),
    )


#: A PMT is noisy when its dark rate is above this many times the nominal rate of its type: the
#: dark rates of good PMTs spread by about 20 % around it, seldom beyond 1.8 times.
NOISY_FACTOR = 3.0
#: ... and significantly so: its pre-trigger hits exceed those expected at that rate by this many
#: Poisson standard deviations, so that a short run (a few pre-trigger hits a PMT) flags no good
#: PMT by chance among 17,612. With 20,000 events (3.6 ms of pre-trigger windows) the effective
#: cut is 3.6 times the nominal rate for the NNVT PMTs and 4.2 times for the Hamamatsu ones.
NOISY_SIGNIFICANCE = 5.0


def noisy(
    dark_count: ArrayLike,
    livetime_ns: float,
    nominal_rate_hz: ArrayLike,
    *,
    classes: PmtClassification | None = None,
    factor: float = NOISY_FACTOR,
    significance: float = NOISY_SIGNIFICANCE,
) -> npt.NDArray[np.bool_]:
    """Which PMTs are noisy: their dark rate is above ``factor`` times the nominal rate of their
    type, by more than ``significance`` Poisson standard deviations of the count.

    Args:
        dark_count: pre-trigger hits of each PMT.
        livetime_ns: the summed pre-trigger windows, ns.
        nominal_rate_hz: the nominal dark rate of each PMT's type, Hz (one value, or one a PMT).
        classes: the PMTs' classes by hit rate; dead and hot PMTs are then not noisy.
        factor: the cut, in multiples of the nominal rate.
        significance: how far above the cut the count must lie, in standard deviations.

    Returns:
        One boolean a PMT (all False when the live time is 0).
    """
    count = np.asarray(dark_count, dtype=np.float64)
    expected = factor * np.asarray(nominal_rate_hz, dtype=np.float64) * float(livetime_ns) * 1e-9
    result: npt.NDArray[np.bool_] = (count > expected + significance * np.sqrt(expected)) & (
        expected > 0
    )
    if classes is not None:
        result &= (classes.pmt_class != DEAD) & (classes.pmt_class != HOT)
    return result
