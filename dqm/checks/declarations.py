"""Declarations of checks: read from TOML, checked, and gathered into one catalog.

Two places declare checks, read in this order: the built-in ``checks.toml`` of this package (the
defaults for this detector), then the operator's file (``checks_file`` in ``dqm.toml`` or
``DQM_CHECKS_FILE``). Each check is a table ``[checks.NAME]``::

    [checks.calib_charge_shape]
    version = 1                          # a positive integer; it only goes up
    kind = "histogram_vs_reference"      # see KINDS
    description = "Charge per hit against the reference run"
    run_types = ["physics"]              # omitted: every run type
    histogram = "calib/charge_pe"        # histogram kinds: stage/name
    # variable = "energy_scale/k40_ratio"  variable kinds: analysis/variable
    [checks.calib_charge_shape.parameters]
    method = "chi2"
    warning_p = 1e-3
    bad_p = 1e-6
    min_entries = 1000                   # the statistics it needs (entries, events, runs)

Each kind (:data:`KINDS`) says what it looks at, its parameters (type, default, limits) and the order
its Warning and Bad limits must be in. A declaration that is wrong in any way is refused with one
sentence naming the file, the entry and the fault: an unknown kind or parameter, a parameter of the
wrong type, limits in the wrong order, a histogram or analysis variable that does not exist.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dqm.analyses.declarations import (
    _NAME,
    DeclarationError,
    _fail,
    _integer,
    _words,
    read_toml,
)
from dqm.messages import RUN_TYPES

if TYPE_CHECKING:
    from dqm.analyses.declarations import Catalog

__all__ = [
    "HISTOGRAMS",
    "KINDS",
    "STAGES",
    "CheckCatalog",
    "CheckDeclaration",
    "DeclarationError",
    "KindSpec",
    "Parameter",
    "check_versions",
    "load_checks",
    "parse_checks",
]

#: The stages a check belongs to; a run's quality is given per stage.
STAGES = ("calib", "rec", "pmt", "analyses", "processing")

#: The merged histograms of a run that checks may look at, by stage (the processing stages make
#: them; a test holds this list against theirs).
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "calib": (
        "charge_pe",
        "total_pe",
        "nhits",
        "hit_time",
        "occupancy",
        "first_hit_residual",
        "dark_rate",
        "hit_rate",
    ),
    "rec": (
        "energy",
        "x",
        "y",
        "z",
        "r3",
        "rho2_z",
        "trigger_rate",
        "trigger_interval",
        "time_residual",
    ),
}

_FIELDS = {"version", "kind", "description", "run_types", "histogram", "variable", "parameters"}


@dataclass(frozen=True)
class Parameter:
    """A parameter of a kind of check.

    Attributes:
        type: ``float``, ``int``, ``str`` or ``band`` (``[low, high]``).
        default: its value when not given (None: it must be given).
        minimum, maximum: its limits, ends included (floats and ints; a band's ends).
        choices: the values a string may take.
        meaning: one line for the documentation and the dashboard's editor.
    """

    type: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    meaning: str = ""

    def parse(self, value: Any, name: str) -> Any:
        """The value checked (and converted: an int where a float goes).

        Raises:
            ValueError: the sentence of what is wrong.
        """
        if self.type == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                allowed = " or ".join(repr(c) for c in self.choices) if self.choices else "a string"
                raise ValueError(f"parameter {name} must be {allowed}, not {value!r}.")
            return value
        if self.type == "band":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ValueError(f"parameter {name} must be [low, high], not {value!r}.")
            low, high = (self._number(v, name) for v in value)
            if low > high:
                raise ValueError(f"parameter {name} must be [low, high] with low <= high.")
            return (low, high)
        number = self._number(value, name)
        if self.type == "int":
            if not float(number).is_integer():
                raise ValueError(f"parameter {name} must be a whole number, not {value!r}.")
            return int(number)
        return float(number)

    def _number(self, value: Any, name: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"parameter {name} must be a number, not {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"parameter {name} must be at least {self.minimum:g}, not {value!r}.")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"parameter {name} must be at most {self.maximum:g}, not {value!r}.")
        return float(value)

    def to_text(self, value: Any) -> str:
        """``value`` as :meth:`from_text` reads it back (a form's field, ``--set key=...``)."""
        if self.type == "band":
            low, high = value
            return f"{low:.10g}, {high:.10g}"
        if self.type in ("float", "int"):
            return f"{value:.10g}"
        return str(value)

    def from_text(self, text: str, name: str) -> Any:
        """The value of a ``key=value`` text (the command line, a form).

        Raises:
            ValueError: the sentence of what is wrong.
        """
        text = text.strip()
        if self.type == "str":
            return self.parse(text.strip("'\""), name)
        if self.type == "band":
            parts = text.strip("[]()").split(",")
            try:
                return self.parse([float(p) for p in parts], name)
            except ValueError:
                raise ValueError(f"parameter {name} must be low,high, not {text!r}.") from None
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"parameter {name} must be a number, not {text!r}.") from None
        return self.parse(
            int(number) if self.type == "int" and number.is_integer() else number, name
        )


#: A rule between parameters: returns the sentence of what is wrong, or None.
OrderRule = Callable[[Mapping[str, Any]], str | None]


def _ascending(low: str, high: str, what: str) -> OrderRule:
    def rule(p: Mapping[str, Any]) -> str | None:
        if p[low] > p[high]:
            return f"{low} ({p[low]:g}) must not be above {high} ({p[high]:g}): {what}."
        return None

    return rule


def _inside(inner: str, outer: str) -> OrderRule:
    def rule(p: Mapping[str, Any]) -> str | None:
        (a, b), (c, d) = p[inner], p[outer]
        if a < c or b > d:
            return (
                f"the {inner} band [{a:g}, {b:g}] must lie inside the {outer} band [{c:g}, {d:g}]: "
                "a value leaves the Warning band before the Bad one."
            )
        return None

    return rule


@dataclass(frozen=True)
class KindSpec:
    """A kind of check.

    Attributes:
        name: its name in declarations.
        target: what a declaration names: ``histogram``, ``variable`` or None.
        stage: its stage (None: the stage of its histogram).
        needs_reference: it compares the run with its reference run.
        parameters: its parameters by name.
        rules: rules between its parameters (the order of Warning and Bad limits).
        statistics: what its statistics count (entries, events, runs, files).
        history_parameter: the parameter giving how many earlier Good runs it reads.
        uses_pmt_cuts: its judgement depends on the run type's PMT cuts (dead, hot, normal), so
            a change of them is back-tested on it.
        description: one line.
    """

    name: str
    target: str | None
    stage: str | None
    parameters: Mapping[str, Parameter]
    description: str
    statistics: str
    needs_reference: bool = False
    rules: tuple[OrderRule, ...] = ()
    history_parameter: str | None = None
    uses_pmt_cuts: bool = False


_P = Parameter

KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            "histogram_vs_reference",
            "histogram",
            None,
            {
                "method": _P("str", "chi2", choices=("chi2", "ks"), meaning="χ² or Kolmogorov"),
                "warning_p": _P(
                    "float", 1e-3, minimum=0.0, maximum=1.0, meaning="Warning below this p"
                ),
                "bad_p": _P("float", 1e-6, minimum=0.0, maximum=1.0, meaning="Bad below this p"),
                "min_effect": _P(
                    "float", 0.0, minimum=0.0, meaning="smallest effect size that counts"
                ),
                "min_entries": _P("float", 1000.0, minimum=0.0, meaning="entries needed"),
            },
            "the shape of a histogram against the reference run's",
            "entries",
            needs_reference=True,
            rules=(_ascending("bad_p", "warning_p", "Bad is the rarer outcome"),),
        ),
        KindSpec(
            "histogram_mean_in_range",
            "histogram",
            None,
            {
                "warning": _P("band", meaning="Good inside this band"),
                "bad": _P("band", meaning="Bad outside this band"),
                "min_entries": _P("float", 100.0, minimum=0.0, meaning="entries needed"),
                "unit": _P("str", "", meaning="the unit of the histogram's axis"),
            },
            "the mean of a histogram inside a Warning and a Bad band",
            "entries",
            rules=(_inside("warning", "bad"),),
        ),
        KindSpec(
            "contents_in_range",
            "histogram",
            None,
            {
                "low": _P("float", meaning="the range's low end"),
                "high": _P("float", meaning="the range's high end"),
                "warning_fraction": _P(
                    "float", 0.01, minimum=0.0, maximum=1.0, meaning="Warning above"
                ),
                "bad_fraction": _P("float", 0.05, minimum=0.0, maximum=1.0, meaning="Bad above"),
                "min_entries": _P("float", 100.0, minimum=0.0, meaning="entries needed"),
            },
            "the fraction of a histogram's entries outside [low, high]",
            "entries",
            rules=(
                _ascending("low", "high", "the range runs from low to high"),
                _ascending("warning_fraction", "bad_fraction", "Warning comes before Bad"),
            ),
        ),
        KindSpec(
            "variable_in_band",
            "variable",
            "analyses",
            {
                "warning": _P("band", meaning="Good inside this band"),
                "bad": _P("band", meaning="Bad outside this band"),
            },
            "an analysis variable inside a Warning and a Bad band",
            "runs",
            rules=(_inside("warning", "bad"),),
        ),
        KindSpec(
            "variable_vs_history",
            "variable",
            "analyses",
            {
                "warning_sigma": _P("float", 3.0, minimum=0.0, meaning="Warning above k σ"),
                "bad_sigma": _P("float", 5.0, minimum=0.0, meaning="Bad above k σ"),
                "runs": _P("int", 10, minimum=1, maximum=1000, meaning="earlier Good runs read"),
                "min_history": _P("int", 5, minimum=1, meaning="earlier Good runs needed"),
            },
            "an analysis variable within k σ of its median in the last Good runs of the type",
            "runs",
            rules=(
                _ascending("warning_sigma", "bad_sigma", "Warning comes before Bad"),
                _ascending("min_history", "runs", "it cannot need more runs than it reads"),
            ),
            history_parameter="runs",
        ),
        KindSpec(
            "pmt_classes",
            None,
            "pmt",
            {
                **{
                    f"{prefix}{cls}_{level}": _P(
                        "int",
                        default,
                        minimum=0,
                        meaning=f"{level.capitalize()} above this many {prefix.replace('_', ' ')}"
                        f"{cls} PMTs",
                    )
                    for prefix, cls, level, default in (
                        ("", "dead", "warning", 100),
                        ("", "dead", "bad", 300),
                        ("", "hot", "warning", 20),
                        ("", "hot", "bad", 100),
                        ("", "noisy", "warning", 50),
                        ("", "noisy", "bad", 200),
                        ("new_", "dead", "warning", 2),
                        ("new_", "dead", "bad", 4),
                        ("new_", "hot", "warning", 0),
                        ("new_", "hot", "bad", 2),
                        ("new_", "noisy", "warning", 1),
                        ("new_", "noisy", "bad", 3),
                    )
                },
                "min_events": _P("float", 1000.0, minimum=0.0, meaning="events needed"),
            },
            "counts of dead, hot and noisy PMTs, and those newly so against the reference run",
            "events",
            needs_reference=True,
            uses_pmt_cuts=True,
            rules=tuple(
                _ascending(f"{prefix}{cls}_warning", f"{prefix}{cls}_bad", "Warning before Bad")
                for prefix in ("", "new_")
                for cls in ("dead", "hot", "noisy")
            ),
        ),
        KindSpec(
            "pmt_sectors_vs_reference",
            None,
            "pmt",
            {
                "quantity": _P(
                    "str",
                    "signal_charge_pe",
                    choices=(
                        "signal_charge_pe",
                        "signal_time_ns",
                        "mean_charge_pe",
                        "mean_time_ns",
                        "hit_rate",
                    ),
                    meaning="the per-PMT quantity compared",
                ),
                "relative": _P(
                    "str", "yes", choices=("yes", "no"), meaning="compare ratios (yes) or shifts"
                ),
                "n_phi": _P("int", 12, minimum=1, maximum=72, meaning="sectors in φ"),
                "dipole": _P(
                    "str",
                    "yes",
                    choices=("yes", "no"),
                    meaning="judge each sector against a dipole in φ of the others (yes) or "
                    "their median (no)",
                ),
                "n_theta": _P("int", 6, minimum=1, maximum=36, meaning="sectors in θ"),
                "min_sigma": _P("float", 5.0, minimum=0.0, meaning="significance needed"),
                "warning_effect": _P(
                    "float", 0.03, minimum=0.0, meaning="Warning from this change (ratio or ns)"
                ),
                "bad_effect": _P("float", 0.05, minimum=0.0, meaning="Bad from this change"),
                "min_events": _P("float", 1000.0, minimum=0.0, meaning="events needed"),
            },
            "each sector's per-PMT mean against the reference run's, the other sectors aside",
            "events",
            needs_reference=True,
            uses_pmt_cuts=True,
            rules=(_ascending("warning_effect", "bad_effect", "Warning comes before Bad"),),
        ),
        KindSpec(
            "processing",
            None,
            "processing",
            {
                "failed_warning": _P(
                    "int", 1, minimum=0, meaning="Warning from this many failed files"
                ),
                "failed_bad": _P("int", 1, minimum=0, meaning="Bad from this many failed files"),
                "tocheck_warning": _P(
                    "int", 1, minimum=0, meaning="Warning from this many TOCHECK"
                ),
                "tocheck_bad": _P("int", 3, minimum=0, meaning="Bad from this many TOCHECK"),
                "latency_warning_s": _P(
                    "float", 900.0, minimum=0.0, meaning="Warning when a file took longer"
                ),
                "latency_bad_s": _P("float", 3600.0, minimum=0.0, meaning="Bad when longer"),
            },
            "failed files, jobs to check, and the time from a file's arrival to its results",
            "files",
            rules=(
                _ascending("failed_warning", "failed_bad", "Warning comes before Bad"),
                _ascending("tocheck_warning", "tocheck_bad", "Warning comes before Bad"),
                _ascending("latency_warning_s", "latency_bad_s", "Warning comes before Bad"),
            ),
        ),
    )
}


@dataclass(frozen=True)
class CheckDeclaration:
    """One version of a check, as declared.

    Attributes:
        name: the check's name.
        version: its version (results of different versions stand side by side).
        kind: its kind (:data:`KINDS`).
        stage: the stage whose quality it counts in (:data:`STAGES`).
        parameters: its parameters, checked, with the defaults filled in.
        description: one line for lists.
        run_types: the run types it applies to (None: all).
        histogram: ``(stage, name)`` of the histogram it looks at (histogram kinds).
        variable: ``(analysis, variable)`` it looks at (variable kinds).
        origin: the file that declared it, or who saved it.
    """

    name: str
    version: int
    kind: str
    stage: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    run_types: frozenset[str] | None = None
    histogram: tuple[str, str] | None = None
    variable: tuple[str, str] | None = None
    origin: str = ""

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    @property
    def needs_reference(self) -> bool:
        return self.spec.needs_reference

    @property
    def history_runs(self) -> int:
        """How many earlier Good runs of the type it reads (0: none)."""
        key = self.spec.history_parameter
        return int(self.parameters[key]) if key else 0

    @property
    def target(self) -> str:
        """What it looks at, as written in declarations (``calib/charge_pe``), or ``""``."""
        found = self.histogram or self.variable
        return "/".join(found) if found else ""

    def applies_to(self, run_type: str) -> bool:
        return self.run_types is None or run_type in self.run_types

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON (as it is recorded in the database)."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "stage": self.stage,
            "description": self.description,
            "run_types": sorted(self.run_types) if self.run_types is not None else None,
            "histogram": "/".join(self.histogram) if self.histogram else None,
            "variable": "/".join(self.variable) if self.variable else None,
            "parameters": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.parameters.items()
            },
        }

    def with_settings(self, settings: Mapping[str, str]) -> CheckDeclaration:
        """This check with some parameters given as ``key=value`` texts (the command line, a
        form), checked as a file's are; its version one higher.

        Raises:
            DeclarationError: an unknown parameter or a bad value.
        """
        spec = self.spec
        parameters = dict(self.parameters)
        for key, text in settings.items():
            if key not in spec.parameters:
                raise _fail(
                    self.origin,
                    self.name,
                    f"a {self.kind} check has no parameter {key!r}; its parameters are "
                    f"{', '.join(spec.parameters)}.",
                    "checks",
                )
            try:
                parameters[key] = spec.parameters[key].from_text(str(text), key)
            except ValueError as exc:
                raise _fail(self.origin, self.name, str(exc), "checks") from None
        _check_rules(spec, parameters, self.origin, self.name)
        return replace(self, version=self.version + 1, parameters=parameters)


@dataclass(frozen=True)
class CheckCatalog:
    """The checks declared, by name (one version of each), and where they were read."""

    checks: Mapping[str, CheckDeclaration]
    origins: tuple[str, ...] = ()

    def __iter__(self) -> Any:
        return iter(self.checks.values())

    def __len__(self) -> int:
        return len(self.checks)

    def __contains__(self, name: object) -> bool:
        return name in self.checks

    def get(self, name: str) -> CheckDeclaration:
        """The declaration of ``name``.

        Raises:
            DeclarationError: no check of that name is declared.
        """
        try:
            return self.checks[name]
        except KeyError:
            known = ", ".join(sorted(self.checks)) or "none"
            raise DeclarationError(
                f"no check {name!r} is declared; the checks are: {known}."
            ) from None

    def for_run(self, run_type: str) -> list[CheckDeclaration]:
        """The checks that apply to a run of this type."""
        return [c for c in self.checks.values() if c.applies_to(run_type)]

    def variables(self) -> set[tuple[str, str]]:
        """Every (analysis, variable) a check reads."""
        return {c.variable for c in self.checks.values() if c.variable is not None}

    def history_runs(self) -> int:
        """The most earlier Good runs any check reads."""
        return max((c.history_runs for c in self.checks.values()), default=0)


# --- parsing -------------------------------------------------------------------------------------


def _check_rules(spec: KindSpec, parameters: Mapping[str, Any], origin: str, name: str) -> None:
    for rule in spec.rules:
        problem = rule(parameters)
        if problem:
            raise _fail(origin, name, problem, "checks")


def _target(
    entry: Mapping[str, Any], spec: KindSpec, origin: str, name: str, analyses: Catalog | None
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    def fail(message: str) -> DeclarationError:
        return _fail(origin, name, message, "checks")

    for key in ("histogram", "variable"):
        if key in entry and spec.target != key:
            raise fail(f"a {spec.name} check names no {key}.")
    if spec.target is None:
        return None, None
    value = entry.get(spec.target)
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 2 or not all(parts):
        example = "calib/charge_pe" if spec.target == "histogram" else "energy_scale/k40_ratio"
        raise fail(f"a {spec.name} check needs {spec.target} = 'a/b' (such as {example!r}).")
    first, second = parts
    if spec.target == "histogram":
        if first not in HISTOGRAMS or second not in HISTOGRAMS[first]:
            known = "; ".join(f"{s}: {', '.join(n)}" for s, n in HISTOGRAMS.items())
            raise fail(f"there is no histogram {value!r}; the histograms are {known}.")
        return (first, second), None
    if analyses is not None:
        if first not in analyses:
            raise fail(
                f"variable {value!r}: no analysis {first!r} is declared; the analyses are "
                f"{', '.join(sorted(analyses.analyses))}."
            )
        variables = analyses.get(first).variables
        if second not in variables:
            raise fail(
                f"variable {value!r}: analysis {first} has no variable {second!r}; its variables "
                f"are {', '.join(variables)}."
            )
    return None, (first, second)


def parse_check(
    name: str, entry: Any, origin: str, *, analyses: Catalog | None = None
) -> CheckDeclaration:
    """One declaration from its TOML table.

    Raises:
        DeclarationError: anything wrong with it.
    """

    def fail(message: str) -> DeclarationError:
        return _fail(origin, name, message, "checks")

    if not _NAME.fullmatch(name):
        raise fail(
            "a check name is lower-case letters, digits and '_', starting with a letter (at most "
            "64)."
        )
    if not isinstance(entry, dict):
        raise fail("a check is declared as a table of fields.")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(_FIELDS))}.")
    if "version" not in entry:
        raise fail("version is missing (a positive integer).")
    version = _integer(entry["version"], "version", origin, name, minimum=1, table="checks")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise fail(f"unknown kind {kind!r}; the kinds are {', '.join(KINDS)}.")
    spec = KINDS[kind]
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be a string.")
    run_types: frozenset[str] | None = None
    if "run_types" in entry:
        types = _words(entry["run_types"], "run_types", origin, name, "checks")
        bad = [t for t in types if t not in RUN_TYPES]
        if bad or not types:
            raise fail(
                f"run type {bad[0] if bad else 'list'!r} is not one of {', '.join(RUN_TYPES)}."
            )
        run_types = frozenset(types)
    histogram, variable = _target(entry, spec, origin, name, analyses)
    given = entry.get("parameters", {})
    if not isinstance(given, dict):
        raise fail("parameters must be a table.")
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        raise fail(
            f"a {kind} check has no parameter {unknown[0]!r}; its parameters are "
            f"{', '.join(spec.parameters)}."
        )
    parameters: dict[str, Any] = {}
    for key, parameter in spec.parameters.items():
        if key not in given:
            if parameter.default is None:
                raise fail(f"parameter {key} is missing ({parameter.meaning}).")
            parameters[key] = parameter.default
            continue
        try:
            parameters[key] = parameter.parse(given[key], key)
        except ValueError as exc:
            raise fail(str(exc)) from None
    _check_rules(spec, parameters, origin, name)
    stage = spec.stage or (histogram[0] if histogram else "processing")
    return CheckDeclaration(
        name=name,
        version=version,
        kind=kind,
        stage=stage,
        parameters=parameters,
        description=description.strip() or spec.description,
        run_types=run_types,
        histogram=histogram,
        variable=variable,
        origin=origin,
    )


def parse_checks(
    content: Mapping[str, Any], origin: str, *, analyses: Catalog | None = None
) -> list[CheckDeclaration]:
    """The declarations of a parsed TOML document.

    Raises:
        DeclarationError: anything wrong in it.
    """
    unknown = sorted(set(content) - {"checks"})
    if unknown:
        raise _fail(
            origin,
            None,
            f"unknown top-level key {unknown[0]!r}; declare each check as [checks.NAME].",
        )
    checks = content.get("checks", {})
    if not isinstance(checks, Mapping):
        raise _fail(origin, None, "'checks' must be a table of [checks.NAME] tables.")
    return [parse_check(name, entry, origin, analyses=analyses) for name, entry in checks.items()]


def builtin_file() -> Path:
    """The built-in ``checks.toml``."""
    return Path(str(importlib.resources.files("dqm.checks").joinpath("checks.toml")))


def load_checks(
    checks_file: Path | None = None,
    *,
    builtin: Path | None = None,
    analyses: Catalog | None = None,
) -> CheckCatalog:
    """Every check declared: built in, then the operator's.

    Args:
        checks_file: the operator's file (``Settings.checks_file``).
        builtin: the built-in file (default: the package's ``checks.toml``).
        analyses: the analyses declared, against which the variables of checks are checked.

    Raises:
        DeclarationError: the first problem, as one sentence naming the file and the entry.
    """
    paths = [builtin or builtin_file()]
    if checks_file is not None:
        paths.append(checks_file)
    checks: dict[str, CheckDeclaration] = {}
    for path in paths:
        for declaration in parse_checks(read_toml(path), str(path), analyses=analyses):
            first = checks.get(declaration.name)
            if first is not None:
                raise _fail(
                    declaration.origin,
                    declaration.name,
                    f"a check of this name is already declared in {first.origin}; give it "
                    "another name.",
                    "checks",
                )
            checks[declaration.name] = declaration
    return CheckCatalog(checks, tuple(str(p) for p in paths))


def check_versions(catalog: Iterable[CheckDeclaration], known: Mapping[str, int]) -> None:
    """Refuse a declared version lower than one the database already knows.

    Raises:
        DeclarationError: a version went backwards.
    """
    for declaration in catalog:
        highest = known.get(declaration.name)
        if highest is not None and declaration.version < highest:
            raise _fail(
                declaration.origin,
                declaration.name,
                f"version {declaration.version} is below version {highest}, which the database "
                f"already has; versions only go up (declare version {highest} or higher).",
                "checks",
            )
