"""The shipped declarations of the analyses (``dqm/analyses/analyses.toml``), read plainly, and the
check that a result keeps to its analysis's declaration."""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Callable
from importlib import import_module
from typing import Any

from dqm.analyses import Result, Value
from dqm.paths import PROJECT_ROOT

TOML = PROJECT_ROOT / "dqm" / "analyses" / "analyses.toml"


@functools.cache
def declarations() -> dict[str, dict[str, Any]]:
    """Each analysis's table, by name."""
    content: dict[str, dict[str, Any]] = tomllib.loads(TOML.read_text())["analyses"]
    return content


def function_of(name: str) -> Callable[..., Result]:
    """The analysis's function, as its ``function`` names it."""
    module, _, attribute = declarations()[name]["function"].partition(":")
    function: Callable[..., Result] = getattr(import_module(module), attribute)
    return function


def run_analysis(name: str, run: Any, **parameters: Any) -> Result:
    """Call the analysis with its declared parameters (``parameters`` override them) and check
    its result against its declaration."""
    declared = declarations()[name]
    result = function_of(name)(run, **{**declared.get("parameters", {}), **parameters})
    check_result(name, result)
    return result


def check_result(name: str, result: Result) -> None:
    """Every variable returned is declared, every required one returned, all finite, units as
    declared."""
    variables = declarations()[name]["variables"]
    unknown = set(result.variables) - set(variables)
    assert not unknown, f"{name} returns undeclared variables {sorted(unknown)}"
    required = {v for v, spec in variables.items() if not spec.get("optional", False)}
    missing = required - set(result.variables)
    assert not missing, f"{name} leaves out required variables {sorted(missing)}"
    for variable, value in result.variables.items():
        if isinstance(value, Value):
            assert value.finite, f"{name}.{variable} = {value} is not finite"
            assert value.unit in (None, variables[variable]["unit"])
        else:
            assert math.isfinite(value), f"{name}.{variable} = {value} is not finite"


def value(result: Result, variable: str) -> float:
    """A variable's value, whether a Value or a plain number."""
    item = result.variables[variable]
    return float(item.value if isinstance(item, Value) else item)


def error(result: Result, variable: str) -> float:
    """A variable's error (0 for a plain number or none given)."""
    item = result.variables[variable]
    return float(item.error or 0.0) if isinstance(item, Value) else 0.0
