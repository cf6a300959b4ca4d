"""Declarations of analyses: read from TOML, checked, and gathered into one catalog.

Three places declare analyses, read in this order:

1. the built-in ``analyses.toml`` shipped in this package;
2. packages installed beside the DQM, through the entry-point group ``dqm.analyses``: an entry
   point names a TOML file (a ``str`` or ``pathlib.Path``), a mapping shaped like the TOML's
   ``analyses`` table, or a function without arguments that returns either;
3. the operator's file, ``analyses_file`` in ``dqm.toml`` or ``DQM_ANALYSES_FILE``.

Each declaration is a table ``[analyses.NAME]``::

    [analyses.energy_scale]
    version = 1                                   # a positive integer; it only goes up
    description = "Positions of the gamma lines of the physics spectrum"
    function = "dqm.analyses.builtin.energy:energy_scale"
    run_types = ["physics"]                       # omitted: every run type
    min_run = 1000                                # optional, and max_run
    include_tags = []                             # runs must have all of these
    exclude_tags = ["messy"]                      # runs must have none of these
    requires = ["rec_histograms", "event_table"]  # see REQUIREMENTS
    when = "completion"                           # or "live": after each merge of a running run
    timeout = 120                                 # seconds
    [analyses.energy_scale.parameters]            # keyword arguments of the function
    window_sigma = 2.5
    [analyses.energy_scale.variables]
    k40_peak_mev = { unit = "MeV", meaning = "fitted 40K line", expected = [1.446, 1.476] }

A declaration that is wrong in any way is refused with one sentence naming the file, the entry
and what is wrong (:class:`DeclarationError`): bad TOML, an unknown field or requirement, a function
that cannot be imported, a duplicate name. A version lower than one the database already knows is
refused where the database is at hand (:func:`check_versions`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import inspect
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dqm.errors import ConfigError
from dqm.messages import RUN_TYPES
from dqm.runs import TAG_PATTERN

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIREMENTS",
    "Catalog",
    "Declaration",
    "DeclarationError",
    "VariableSpec",
    "check_versions",
    "load_catalog",
    "parse_declarations",
]

#: The entry-point group through which other packages declare analyses.
ENTRY_POINT_GROUP = "dqm.analyses"

#: What an analysis may require before it runs, and what each means.
REQUIREMENTS: dict[str, str] = {
    "calib_histograms": "the run's merged Calib histograms",
    "rec_histograms": "the run's merged Rec histograms",
    "pmt_stats": "the run's merged per-PMT statistics",
    "event_table": "the run's reconstructed events",
    "calibration": "a calibration valid for the run (not the nominal constants)",
    "previous_calibration": "a calibration before the one valid for the run",
    "run_end": "the run's run_end message",
}

#: When an analysis runs: once the run's data are complete, or after each merge while it runs.
WHEN = ("completion", "live")

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FUNCTION = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_FIELDS = {
    "version",
    "description",
    "function",
    "run_types",
    "min_run",
    "max_run",
    "include_tags",
    "exclude_tags",
    "requires",
    "when",
    "timeout",
    "parameters",
    "variables",
}
_VARIABLE_FIELDS = {"unit", "meaning", "expected", "optional"}
#: Timeout of an analysis that declares none, seconds.
DEFAULT_TIMEOUT_S = 300.0


class DeclarationError(ConfigError):
    """An analysis declaration is wrong: the message names the file, the entry and the fault."""


@dataclass(frozen=True)
class VariableSpec:
    """A declared variable of an analysis.

    Attributes:
        name: its name in results and trends.
        unit: its unit (``MeV``, ``Hz``, ``1`` for a ratio).
        meaning: one line that says what it is.
        expected: the band it is expected in, for the trend plot (None: none declared).
        optional: whether the analysis may leave it out when it cannot be measured.
    """

    name: str
    unit: str
    meaning: str
    expected: tuple[float, float] | None = None
    optional: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "meaning": self.meaning,
            "expected": list(self.expected) if self.expected else None,
            "optional": self.optional,
        }


@dataclass(frozen=True)
class Declaration:
    """One version of an analysis, as declared.

    Attributes:
        name: the analysis's name.
        version: its version (results of different versions stand side by side).
        function: the callable, ``package.module:function``.
        variables: the variables it returns, by name.
        description: one line for lists.
        run_types: the run types it applies to (None: all).
        min_run, max_run: the range of runs it applies to (None: open).
        include_tags: runs must have all of these tags.
        exclude_tags: runs must have none of these tags.
        requires: inputs that must exist before it runs (:data:`REQUIREMENTS`).
        when: ``completion`` (once the run's data are complete) or ``live`` (after each merge).
        timeout_s: the longest it may run.
        parameters: keyword arguments of the function.
        origin: the file or entry point that declared it.
    """

    name: str
    version: int
    function: str
    variables: Mapping[str, VariableSpec]
    description: str = ""
    run_types: frozenset[str] | None = None
    min_run: int | None = None
    max_run: int | None = None
    include_tags: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()
    when: str = "completion"
    timeout_s: float = DEFAULT_TIMEOUT_S
    parameters: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""

    @property
    def live(self) -> bool:
        return self.when == "live"

    def applies_to(self, *, run_id: int, run_type: str, tags: Iterable[str] = ()) -> bool:
        """Whether the analysis applies to a run of this number, type and tags."""
        if self.run_types is not None and run_type not in self.run_types:
            return False
        if self.min_run is not None and run_id < self.min_run:
            return False
        if self.max_run is not None and run_id > self.max_run:
            return False
        have = set(tags)
        return self.include_tags <= have and not (self.exclude_tags & have)

    def load_function(self) -> Callable[..., Any]:
        """The declared callable, imported.

        Raises:
            DeclarationError: it cannot be imported, or is not callable.
        """
        return _import_function(self.function, self.origin, self.name)

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON (as it is recorded in the database)."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "function": self.function,
            "run_types": sorted(self.run_types) if self.run_types is not None else None,
            "min_run": self.min_run,
            "max_run": self.max_run,
            "include_tags": sorted(self.include_tags),
            "exclude_tags": sorted(self.exclude_tags),
            "requires": list(self.requires),
            "when": self.when,
            "timeout": self.timeout_s,
            "parameters": dict(self.parameters),
            "variables": {name: spec.to_json() for name, spec in self.variables.items()},
        }


@dataclass(frozen=True)
class Catalog:
    """The analyses declared, by name (one version of each), and where they were read."""

    analyses: Mapping[str, Declaration]
    origins: tuple[str, ...] = ()

    def __iter__(self) -> Any:
        return iter(self.analyses.values())

    def __len__(self) -> int:
        return len(self.analyses)

    def __contains__(self, name: object) -> bool:
        return name in self.analyses

    def get(self, name: str) -> Declaration:
        """The declaration of ``name``.

        Raises:
            DeclarationError: no analysis of that name is declared.
        """
        try:
            return self.analyses[name]
        except KeyError:
            known = ", ".join(sorted(self.analyses)) or "none"
            raise DeclarationError(
                f"no analysis {name!r} is declared; the analyses are: {known}."
            ) from None

    def for_run(
        self, *, run_id: int, run_type: str, tags: Iterable[str] = (), live: bool | None = None
    ) -> list[Declaration]:
        """The analyses that apply to a run (only the live ones, or only the others, if given)."""
        tags = list(tags)
        return [
            d
            for d in self.analyses.values()
            if d.applies_to(run_id=run_id, run_type=run_type, tags=tags)
            and (live is None or d.live == live)
        ]


# --- parsing -------------------------------------------------------------------------------------


def _fail(
    origin: str, entry: str | None, message: str, table: str = "analyses"
) -> DeclarationError:
    """The error for a fault of ``[table.entry]`` in ``origin`` (the file, or an entry point)."""
    where = f"{origin}: [{table}.{entry}]" if entry else origin
    return DeclarationError(f"{where}: {message}")


def _integer(
    value: Any, what: str, origin: str, name: str, minimum: int = 0, table: str = "analyses"
) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(
            origin, name, f"{what} must be an integer of at least {minimum}, not {value!r}.", table
        )
    return value


def _words(value: Any, what: str, origin: str, name: str, table: str = "analyses") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(origin, name, f"{what} must be a list of strings, not {value!r}.", table)
    return list(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _variables(value: Any, origin: str, name: str) -> dict[str, VariableSpec]:
    if not isinstance(value, dict) or not value:
        raise _fail(
            origin,
            name,
            "variables must be a table of at least one variable, each with a unit and a meaning.",
        )
    specs = {}
    for variable, spec in value.items():
        if not _NAME.fullmatch(variable):
            raise _fail(
                origin,
                name,
                f"variable {variable!r} is not a name of lower-case letters, digits and '_'.",
            )
        if not isinstance(spec, dict):
            raise _fail(
                origin, name, f"variable {variable!r} must be a table with a unit and a meaning."
            )
        unknown = sorted(set(spec) - _VARIABLE_FIELDS)
        if unknown:
            raise _fail(
                origin,
                name,
                f"variable {variable!r} has an unknown field {unknown[0]!r}; its fields are "
                f"{', '.join(sorted(_VARIABLE_FIELDS))}.",
            )
        unit, meaning = spec.get("unit"), spec.get("meaning")
        if not isinstance(unit, str) or not unit.strip() or len(unit) > 32:
            raise _fail(
                origin,
                name,
                f"variable {variable!r} needs a unit of at most 32 characters (use '1' for a "
                "ratio).",
            )
        if not isinstance(meaning, str) or not meaning.strip():
            raise _fail(origin, name, f"variable {variable!r} needs a one-line meaning.")
        expected = spec.get("expected")
        band: tuple[float, float] | None = None
        if expected is not None:
            low, high = (
                (_number(expected[0]), _number(expected[1]))
                if isinstance(expected, list) and len(expected) == 2
                else (None, None)
            )
            if low is None or high is None or not low <= high:
                raise _fail(
                    origin,
                    name,
                    f"variable {variable!r}: expected must be [low, high] with low <= high, not "
                    f"{expected!r}.",
                )
            band = (low, high)
        optional = spec.get("optional", False)
        if not isinstance(optional, bool):
            raise _fail(origin, name, f"variable {variable!r}: optional must be true or false.")
        specs[variable] = VariableSpec(variable, unit.strip(), meaning.strip(), band, optional)
    return specs


def _import_function(path: str, origin: str, name: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:  # noqa: BLE001 - whatever importing the operator's module raises
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(
            origin, name, f"function {path!r} cannot be imported ({type(exc).__name__}: {detail})."
        ) from None
    if not callable(target):
        raise _fail(origin, name, f"function {path!r} is not callable.")
    return target  # type: ignore[no-any-return]


def _check_parameters(
    function: Callable[..., Any], parameters: Mapping[str, Any], origin: str, name: str, path: str
) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin without a signature: nothing to check
    try:
        signature.bind(None, **parameters)
    except TypeError as exc:
        raise _fail(
            origin,
            name,
            f"function {path!r} does not take these parameters and the run view: {exc}.",
        ) from None


def parse_declaration(
    name: str, entry: Any, origin: str, *, import_functions: bool = True
) -> Declaration:
    """One declaration from its TOML table.

    Raises:
        DeclarationError: anything wrong with it.
    """
    if not _NAME.fullmatch(name):
        raise _fail(
            origin,
            name,
            "an analysis name is lower-case letters, digits and '_', starting with a letter "
            "(at most 64).",
        )
    if not isinstance(entry, dict):
        raise _fail(origin, name, "an analysis is declared as a table of fields.")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise _fail(
            origin,
            name,
            f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(_FIELDS))}.",
        )
    if "version" not in entry:
        raise _fail(origin, name, "version is missing (a positive integer).")
    version = _integer(entry["version"], "version", origin, name, minimum=1)
    function = entry.get("function")
    if not isinstance(function, str) or not _FUNCTION.fullmatch(function):
        raise _fail(
            origin,
            name,
            f"function must be 'package.module:function', not {function!r}.",
        )
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise _fail(origin, name, "description must be a string.")
    run_types: frozenset[str] | None = None
    if "run_types" in entry:
        types = _words(entry["run_types"], "run_types", origin, name)
        bad = [t for t in types if t not in RUN_TYPES]
        if bad or not types:
            raise _fail(
                origin,
                name,
                f"run type {bad[0] if bad else 'list'!r} is not one of {', '.join(RUN_TYPES)}.",
            )
        run_types = frozenset(types)
    min_run = _integer(entry["min_run"], "min_run", origin, name) if "min_run" in entry else None
    max_run = _integer(entry["max_run"], "max_run", origin, name) if "max_run" in entry else None
    if min_run is not None and max_run is not None and min_run > max_run:
        raise _fail(origin, name, f"min_run {min_run} is above max_run {max_run}.")
    tags = {}
    for key in ("include_tags", "exclude_tags"):
        words = _words(entry.get(key, []), key, origin, name)
        bad = [w for w in words if not TAG_PATTERN.fullmatch(w)]
        if bad:
            raise _fail(
                origin, name, f"{key}: {bad[0]!r} is not a tag (lower-case letters, digits, _, -)."
            )
        tags[key] = frozenset(words)
    if tags["include_tags"] & tags["exclude_tags"]:
        both = min(tags["include_tags"] & tags["exclude_tags"])
        raise _fail(origin, name, f"tag {both!r} is both included and excluded.")
    requires = _words(entry.get("requires", []), "requires", origin, name)
    for requirement in requires:
        if requirement not in REQUIREMENTS:
            raise _fail(
                origin,
                name,
                f"unknown requirement {requirement!r}; the requirements are "
                f"{', '.join(REQUIREMENTS)}.",
            )
    when = entry.get("when", "completion")
    if when not in WHEN:
        raise _fail(origin, name, f"when must be 'completion' or 'live', not {when!r}.")
    timeout = _number(entry.get("timeout", DEFAULT_TIMEOUT_S))
    if timeout is None or timeout <= 0:
        raise _fail(
            origin, name, f"timeout must be a positive number of seconds, not {entry['timeout']!r}."
        )
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _fail(origin, name, "parameters must be a table of keyword arguments.")
    variables = _variables(entry.get("variables"), origin, name)
    if import_functions:
        _check_parameters(
            _import_function(function, origin, name), parameters, origin, name, function
        )
    return Declaration(
        name=name,
        version=version,
        function=function,
        variables=variables,
        description=description.strip(),
        run_types=run_types,
        min_run=min_run,
        max_run=max_run,
        include_tags=tags["include_tags"],
        exclude_tags=tags["exclude_tags"],
        requires=tuple(dict.fromkeys(requires)),
        when=when,
        timeout_s=timeout,
        parameters=dict(parameters),
        origin=origin,
    )


def parse_declarations(
    content: Mapping[str, Any], origin: str, *, import_functions: bool = True
) -> list[Declaration]:
    """The declarations of a parsed TOML document (or a mapping shaped like one).

    Raises:
        DeclarationError: anything wrong in it.
    """
    unknown = sorted(set(content) - {"analyses"})
    if unknown:
        raise _fail(
            origin,
            None,
            f"unknown top-level key {unknown[0]!r}; declare each analysis as [analyses.NAME].",
        )
    analyses = content.get("analyses", {})
    if not isinstance(analyses, Mapping):
        raise _fail(origin, None, "'analyses' must be a table of [analyses.NAME] tables.")
    return [
        parse_declaration(name, entry, origin, import_functions=import_functions)
        for name, entry in analyses.items()
    ]


def read_file(path: Path, *, import_functions: bool = True) -> list[Declaration]:
    """The declarations of a TOML file.

    Raises:
        DeclarationError: the file cannot be read, is not TOML, or a declaration is wrong.
    """
    return parse_declarations(read_toml(path), str(path), import_functions=import_functions)


def read_toml(path: Path) -> dict[str, Any]:
    """A declarations file's content.

    Raises:
        DeclarationError: the file is missing, unreadable or not TOML (one sentence naming it).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise _fail(str(path), None, "no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(str(path), None, f"cannot be read ({exc}).") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(str(path), None, f"is not valid TOML ({exc}).") from None


def builtin_file() -> Path:
    """The built-in ``analyses.toml``."""
    return Path(str(importlib.resources.files("dqm.analyses").joinpath("analyses.toml")))


def _from_entry_point(
    entry_point: importlib.metadata.EntryPoint, import_functions: bool
) -> list[Declaration]:
    origin = f"entry point {entry_point.name} ({entry_point.value}) of group {ENTRY_POINT_GROUP}"
    try:
        target = entry_point.load()
        if callable(target):
            target = target()
    except Exception as exc:  # noqa: BLE001 - whatever the other package raises
        raise _fail(origin, None, f"cannot be loaded ({type(exc).__name__}: {exc}).") from None
    if isinstance(target, str | Path):
        return read_file(Path(target), import_functions=import_functions)
    if isinstance(target, Mapping):
        return parse_declarations(target, origin, import_functions=import_functions)
    raise _fail(
        origin,
        None,
        f"gives a {type(target).__name__}; it must give the path of a TOML file or a mapping "
        "shaped like one.",
    )


def load_catalog(
    analyses_file: Path | None = None,
    *,
    builtin: Path | None = None,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    import_functions: bool = True,
) -> Catalog:
    """Every analysis declared: built in, by installed packages and by the operator.

    Args:
        analyses_file: the operator's file (``Settings.analyses_file``).
        builtin: the built-in file (default: the package's ``analyses.toml``).
        entry_points: the packages' entry points (default: those installed, group
            :data:`ENTRY_POINT_GROUP`).
        import_functions: import each function to check it exists and takes its parameters.

    Raises:
        DeclarationError: the first problem, as one sentence naming the file and the entry.
    """
    declarations = read_file(builtin or builtin_file(), import_functions=import_functions)
    origins = [str(builtin or builtin_file())]
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in entry_points:
        found = _from_entry_point(entry_point, import_functions)
        declarations += found
        origins.append(f"entry point {entry_point.name}")
    if analyses_file is not None:
        declarations += read_file(analyses_file, import_functions=import_functions)
        origins.append(str(analyses_file))
    analyses: dict[str, Declaration] = {}
    for declaration in declarations:
        first = analyses.get(declaration.name)
        if first is not None:
            raise _fail(
                declaration.origin,
                declaration.name,
                f"an analysis of this name is already declared in {first.origin}; give it "
                "another name (or raise the version in one place).",
            )
        analyses[declaration.name] = declaration
    return Catalog(analyses, tuple(origins))


def check_versions(catalog: Catalog, known: Mapping[str, int]) -> None:
    """Refuse a declared version lower than one the database already knows.

    Args:
        known: the highest version of each analysis the database has (declared or with results).

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
                "already has; versions only go up (declare version "
                f"{highest} or higher).",
            )
