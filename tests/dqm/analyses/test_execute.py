"""Running an analysis: its result checked against its declaration, figures made PNG, and every
way an analysis can go wrong turned into one sentence with a traceback."""

from __future__ import annotations

import pickle
import shutil
import time

import numpy as np
import pytest

from dqm.analyses import Result, RunInfo, RunView, Value
from dqm.analyses.declarations import Declaration, VariableSpec
from dqm.analyses.execute import (
    AnalysisFailed,
    AnalysisTask,
    check_result,
    run_analysis,
    to_png,
)

VARIABLES = {
    "x": VariableSpec("x", "MeV", "a number"),
    "y": VariableSpec("y", "1", "sometimes", optional=True),
}
DECLARATION = Declaration(name="demo", version=4, function="math:sqrt", variables=VARIABLES)
VIEW = RunView(run=RunInfo(run_id=77, run_type="physics"))
PNG = to_png(b"\x89PNG\r\n\x1a\n" + b"rest", "tiny")


def test_a_good_result_is_stored_as_declared() -> None:
    output = check_result(
        DECLARATION,
        77,
        Result(
            variables={"x": Value(np.float32(1.5), 0.25), "y": np.int64(3)},
            data={"counts": np.arange(3), "mean": np.float64(2.0), "nothing": float("nan")},
            figures={"plot": PNG},
        ),
    )
    assert [(v.variable, v.value, v.error, v.unit) for v in output.variables] == [
        ("x", 1.5, 0.25, "MeV"),
        ("y", 3.0, None, "1"),
    ]
    assert output.data == {"counts": [0, 1, 2], "mean": 2.0, "nothing": None}
    assert output.figures == {"plot": PNG}
    # an optional variable may be left out
    assert len(check_result(DECLARATION, 77, Result(variables={"x": 1.0})).variables) == 1


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"x": 1.0}, "returned a dict, not a dqm.analyses.Result"),
        (
            Result(variables={"x": 1.0, "z": 2.0}),
            "returned variable 'z', which it does not declare",
        ),
        (Result(variables={"y": 1.0}), "returned no value for 'x'"),
        (Result(variables={"x": float("nan")}), "returned nan for variable 'x'"),
        (Result(variables={"x": Value(float("inf"))}), "returned inf for variable 'x'"),
        (Result(variables={"x": Value(1.0, -0.1)}), "returned the error -0.1 for variable 'x'"),
        (Result(variables={"x": Value(1.0, 0.1, "GeV")}), "is in 'GeV', but is declared in 'MeV'"),
        (Result(variables={"x": "1.0"}), "variable 'x' is a str, not a Value or a number"),
        (Result(variables={"x": 1.0}, data={"when": object()}), "which JSON cannot hold"),
        (Result(variables={"x": 1.0}, data={1: 2}), "has a key 1 that is not a string"),
        (Result(variables={"x": 1.0}, figures={"f": b"GIF89a"}), "is bytes but not a PNG"),
        (Result(variables={"x": 1.0}, figures={"f": [1, 2]}), "figure 'f' is a list; give PNG"),
    ],
)
def test_a_bad_result_fails_in_one_sentence(result: object, message: str) -> None:
    with pytest.raises(AnalysisFailed) as error:
        check_result(DECLARATION, 77, result)
    assert message in str(error.value)
    assert str(error.value).startswith("analysis demo (version 4)")


def raising(run: RunView) -> Result:
    return {"x": 1.0}["missing"]  # type: ignore[return-value]


def sleeping(run: RunView) -> Result:
    time.sleep(10)
    return Result(variables={"x": 1.0})


def catching_everything(run: RunView) -> Result:
    try:
        time.sleep(10)
    except Exception as exc:  # noqa: BLE001 - one that swallows errors cannot swallow its timeout
        return Result(variables={"x": 1.0}, data={"swallowed": str(exc)})
    return Result(variables={"x": 1.0})


def good(run: RunView, *, scale: float) -> Result:
    return Result(variables={"x": Value(scale * run.run_id, 0.1)})


def declared(function: str, **changes: object) -> Declaration:
    return Declaration(
        name="demo",
        version=4,
        function=f"{__name__}:{function}",
        variables=VARIABLES,
        **changes,  # type: ignore[arg-type]
    )


def test_run_analysis_passes_parameters_and_times_it() -> None:
    output = run_analysis(
        AnalysisTask(declared("good", parameters={"scale": 2.0}), VIEW, lineage={"a": 1})
    )
    assert output.variables[0].value == 154.0 and output.lineage == {"a": 1}
    assert 0 <= output.seconds < 5


def test_an_analysis_that_raises_fails_with_its_traceback() -> None:
    with pytest.raises(AnalysisFailed) as error:
        run_analysis(AnalysisTask(declared("raising"), VIEW))
    assert str(error.value) == "analysis demo (version 4) raised on run 77: KeyError: 'missing'"
    assert "in raising" in error.value.traceback_text
    # it crosses process boundaries whole
    copy = pickle.loads(pickle.dumps(error.value))
    assert str(copy) == str(error.value) and copy.traceback_text == error.value.traceback_text


@pytest.mark.parametrize("function", ["sleeping", "catching_everything"])
def test_an_analysis_past_its_timeout_is_stopped(function: str) -> None:
    started = time.perf_counter()
    with pytest.raises(AnalysisFailed, match=r"ran past its timeout of 0.3 s on run 77"):
        run_analysis(AnalysisTask(declared(function, timeout_s=0.3), VIEW))
    assert time.perf_counter() - started < 5


def test_an_analysis_that_cannot_be_imported_fails_in_one_sentence() -> None:
    bad = Declaration(name="demo", version=1, function="nowhere:f", variables=VARIABLES)
    with pytest.raises(AnalysisFailed, match="function 'nowhere:f' cannot be imported"):
        run_analysis(AnalysisTask(bad, VIEW))


def test_holoviews_figures_become_png() -> None:
    import holoviews as hv

    png = to_png(hv.Curve(([0, 1, 2], [1, 3, 2])), "curve")
    assert png.startswith(b"\x89PNG") and len(png) > 1000


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium")
def test_bokeh_figures_become_png() -> None:
    from bokeh.plotting import figure

    plot = figure(width=300, height=200)
    plot.line([0, 1, 2], [1, 3, 2])
    png = to_png(plot, "line")
    assert png.startswith(b"\x89PNG") and len(png) > 1000
