"""The shipped analyses, called as the job server calls them: their declarations read by the
loader (``dqm/analyses/analyses.toml``), their results checked against them by the same function
that checks them before storing (:func:`dqm.analyses.execute.check_result`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dqm.analyses import Result, Value
from dqm.analyses.declarations import Catalog, Declaration, load_catalog
from dqm.analyses.execute import check_result as check_stored


@functools.cache
def catalog() -> Catalog:
    """The built-in analyses only (no entry points, no operator's file)."""
    return load_catalog(None, entry_points=())


def declarations() -> dict[str, Declaration]:
    """Each built-in analysis's declaration, by name, in the order of the file."""
    return dict(catalog().analyses)


def function_of(name: str) -> Callable[..., Result]:
    """The analysis's function, as its declaration names it."""
    function: Callable[..., Result] = catalog().get(name).load_function()
    return function


def run_analysis(name: str, run: Any, **parameters: Any) -> Result:
    """Call the analysis with its declared parameters (``parameters`` override them) and check
    its result against its declaration."""
    declaration = catalog().get(name)
    result = function_of(name)(run, **{**declaration.parameters, **parameters})
    check_result(name, result)
    return result


def check_result(name: str, result: Result) -> None:
    """The result is one the job server would store (raises AnalysisFailed otherwise)."""
    check_stored(catalog().get(name), 0, result)


def value(result: Result, variable: str) -> float:
    """A variable's value, whether a Value or a plain number."""
    item = result.variables[variable]
    return float(item.value if isinstance(item, Value) else item)


def error(result: Result, variable: str) -> float:
    """A variable's error (0 for a plain number or none given)."""
    item = result.variables[variable]
    return float(item.error or 0.0) if isinstance(item, Value) else 0.0
