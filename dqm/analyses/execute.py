"""Running an analysis on a run view, in a worker process: the function called with a time limit,
its result checked against the declaration, its figures turned into PNG.

Whatever goes wrong in the analysis — it raises, returns the wrong type, a NaN, an undeclared
variable, or runs past its timeout — ends in :class:`AnalysisFailed`, with one sentence and the
traceback, so that its job is FAILED and nothing else is disturbed. Pure: no database.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from dqm.analyses.api import Result, RunView, Value
from dqm.analyses.declarations import Declaration
from dqm.errors import DQMError, first_line

__all__ = ["AnalysisFailed", "AnalysisOutput", "AnalysisTask", "run_analysis", "to_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest figure stored, bytes.
MAX_FIGURE_BYTES = 8 << 20


class AnalysisFailed(DQMError):
    """An analysis did not give a valid result: one sentence, with the traceback apart."""

    def __init__(self, message: str, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries with its traceback
        return (type(self), (str(self), self.traceback_text))


class AnalysisTimeout(BaseException):
    """Raised inside the analysis when its time is up (a BaseException: not caught by the
    analysis's own ``except Exception``)."""


@dataclass(frozen=True)
class AnalysisTask:
    """What a worker needs to run one analysis on one run."""

    declaration: Declaration
    view: RunView
    lineage: Mapping[str, Any] = field(default_factory=dict)  # stored with the result


@dataclass(frozen=True)
class StoredVariable:
    """A variable of the result, checked: a finite value, its error and the declared unit."""

    variable: str
    value: float
    error: float | None
    unit: str


@dataclass(frozen=True)
class AnalysisOutput:
    """A valid result, ready to store."""

    analysis: str
    version: int
    run_id: int
    variables: tuple[StoredVariable, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    figures: Mapping[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0
    lineage: Mapping[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the code inside after ``seconds`` (in a process's main thread, as in a loky
    worker or the command line; elsewhere, such as a Dask worker's thread, the job server's own
    deadline applies)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise AnalysisTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _jsonable(value: Any, where: str) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and numbers (refused if not
    JSON)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AnalysisFailed(f"{where} has a key {key!r} that is not a string.")
            out[key] = _jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; data are free-form, so a missing number is null
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise AnalysisFailed(f"{where} is a {type(value).__name__}, which JSON cannot hold.")


def to_png(figure: Any, name: str) -> bytes:
    """A figure as PNG: PNG bytes as they are, a HoloViews object rendered with Matplotlib, a
    Bokeh object rendered by Chromium.

    Raises:
        AnalysisFailed: not a figure, or it cannot be rendered.
    """
    if isinstance(figure, bytes | bytearray | memoryview):
        data = bytes(figure)
        if not data.startswith(PNG_SIGNATURE):
            raise AnalysisFailed(f"figure {name!r} is bytes but not a PNG image.")
        return data
    module = type(figure).__module__.split(".")[0]
    try:
        if module == "holoviews":
            return _holoviews_png(figure)
        if module == "bokeh":
            return _bokeh_png(figure)
    except AnalysisFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - the plotting libraries raise many kinds
        raise AnalysisFailed(
            f"figure {name!r} cannot be rendered as PNG: {first_line(exc, with_type=True)}"
        ) from None
    raise AnalysisFailed(
        f"figure {name!r} is a {type(figure).__name__}; give PNG bytes, a HoloViews object or a "
        "Bokeh object."
    )


def _holoviews_png(figure: Any) -> bytes:
    import io

    import holoviews as hv

    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise AnalysisFailed(
            "a HoloViews figure is stored as PNG through Matplotlib, which is not installed; "
            "install matplotlib or return PNG bytes."
        ) from None
    buffer = io.BytesIO()
    hv.save(figure, buffer, fmt="png", backend="matplotlib")
    return buffer.getvalue()


def _bokeh_png(figure: Any) -> bytes:
    import shutil
    import tempfile
    from pathlib import Path

    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        raise AnalysisFailed(
            "a Bokeh figure is stored as PNG through Chromium and Playwright, which are not both "
            "installed here; return a HoloViews object or PNG bytes."
        )
    html = file_html(figure, INLINE, "figure")
    with tempfile.TemporaryDirectory() as directory:
        page_file = Path(directory) / "figure.html"
        page_file.write_text(html, encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            try:
                page = browser.new_page()
                page.goto(page_file.as_uri())
                page.wait_for_selector(".bk-Canvas, canvas", timeout=20_000)
                page.wait_for_timeout(200)
                element = page.query_selector(".bk-Figure, .bk-root, body") or page
                return element.screenshot(type="png")
            finally:
                browser.close()


def check_result(declaration: Declaration, run_id: int, result: Any) -> AnalysisOutput:
    """The result checked against the declaration.

    Raises:
        AnalysisFailed: not a Result, an undeclared or missing variable, a NaN, a wrong unit,
            data that JSON cannot hold, a figure that is not one.
    """
    name = f"analysis {declaration.name} (version {declaration.version})"
    if not isinstance(result, Result):
        raise AnalysisFailed(
            f"{name} returned a {type(result).__name__}, not a dqm.analyses.Result."
        )
    if not isinstance(result.variables, Mapping):
        raise AnalysisFailed(f"{name}: Result.variables must be a mapping of name to Value.")
    stored = []
    for variable, value in result.variables.items():
        spec = declaration.variables.get(variable)
        if spec is None:
            raise AnalysisFailed(
                f"{name} returned variable {variable!r}, which it does not declare (declared: "
                f"{', '.join(declaration.variables)})."
            )
        if isinstance(value, Value):
            number, error, unit = value.value, value.error, value.unit
        elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
            number, error, unit = value, None, None
        else:
            raise AnalysisFailed(
                f"{name}: variable {variable!r} is a {type(value).__name__}, not a Value or a "
                "number."
            )
        try:
            number = float(number)
            error = None if error is None else float(error)
        except (TypeError, ValueError):
            raise AnalysisFailed(
                f"{name}: variable {variable!r} has a value or error that is not a number."
            ) from None
        if not math.isfinite(number):
            raise AnalysisFailed(f"{name} returned {number} for variable {variable!r}.")
        if error is not None and (not math.isfinite(error) or error < 0):
            raise AnalysisFailed(
                f"{name} returned the error {error} for variable {variable!r}; an error is a "
                "finite number of at least 0."
            )
        if unit is not None and unit != spec.unit:
            raise AnalysisFailed(
                f"{name}: variable {variable!r} is in {unit!r}, but is declared in {spec.unit!r}."
            )
        stored.append(StoredVariable(variable, number, error, spec.unit))
    missing = [
        v
        for v, spec in declaration.variables.items()
        if not spec.optional and v not in result.variables
    ]
    if missing:
        raise AnalysisFailed(
            f"{name} returned no value for {', '.join(repr(m) for m in missing)} (declared, and "
            "not optional)."
        )
    try:
        data = _jsonable(dict(result.data or {}), "Result.data")
        json.dumps(data, allow_nan=False)
    except AnalysisFailed as exc:
        raise AnalysisFailed(f"{name}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise AnalysisFailed(f"{name}: Result.data cannot be stored as JSON ({exc}).") from None
    figures = {}
    for figure_name, figure in dict(result.figures or {}).items():
        if not isinstance(figure_name, str) or not figure_name or len(figure_name) > 64:
            raise AnalysisFailed(f"{name}: a figure's name must be a string of 1 to 64 characters.")
        try:
            png = to_png(figure, figure_name)
        except AnalysisFailed as exc:
            raise AnalysisFailed(f"{name}: {exc}") from None
        if len(png) > MAX_FIGURE_BYTES:
            raise AnalysisFailed(
                f"{name}: figure {figure_name!r} is {len(png):,} bytes; at most "
                f"{MAX_FIGURE_BYTES:,} are stored."
            )
        figures[figure_name] = png
    return AnalysisOutput(
        analysis=declaration.name,
        version=declaration.version,
        run_id=run_id,
        variables=tuple(stored),
        data=data,
        figures=figures,
    )


def run_analysis(task: AnalysisTask) -> AnalysisOutput:
    """Run one analysis on one run (in a worker process): its checked result.

    Raises:
        AnalysisFailed: the analysis raised, ran past its timeout, or returned something invalid;
            the message says which, and ``traceback_text`` where in the code.
    """
    declaration = task.declaration
    name = f"analysis {declaration.name} (version {declaration.version})"
    started = time.perf_counter()
    try:
        function = declaration.load_function()
        with _time_limit(declaration.timeout_s):
            result = function(task.view, **declaration.parameters)
            output = check_result(declaration, task.view.run_id, result)
    except AnalysisTimeout:
        raise AnalysisFailed(
            f"{name} ran past its timeout of {declaration.timeout_s:g} s on run "
            f"{task.view.run_id}.",
            traceback.format_exc(),
        ) from None
    except AnalysisFailed as exc:
        raise AnalysisFailed(str(exc), exc.traceback_text or traceback.format_exc()) from None
    except Exception as exc:  # noqa: BLE001 - whatever the analysis raises is its failure
        raise AnalysisFailed(
            f"{name} raised on run {task.view.run_id}: {first_line(exc, with_type=True)}",
            traceback.format_exc(),
        ) from None
    seconds = time.perf_counter() - started
    return AnalysisOutput(
        analysis=output.analysis,
        version=output.version,
        run_id=output.run_id,
        variables=output.variables,
        data=output.data,
        figures=output.figures,
        seconds=seconds,
        lineage=dict(task.lineage),
    )
