"""Worker processes import the processing stages only: no database layer, no dashboard."""

from __future__ import annotations

from imports import modules_loaded


def test_the_stages_import_neither_sqlalchemy_nor_panel() -> None:
    stages = ["pipeline.stages.processing", "pipeline.stages.merge", "pipeline.stages.laser"]
    loaded = modules_loaded(stages, ["sqlalchemy", "panel", "bokeh"])
    assert loaded == [], f"a worker process imports {loaded}"


def test_analyses_import_neither_sqlalchemy_nor_panel_nor_the_pipeline() -> None:
    """What a worker imports to run an analysis: its execution and the built-in analyses."""
    modules = [
        "dqm.analyses.execute",
        "dqm.analyses.builtin.energy",
        "dqm.analyses.builtin.pmts",
        "dqm.analyses.builtin.reconstruction",
        "dqm.analyses.builtin.running",
    ]
    loaded = modules_loaded(modules, ["sqlalchemy", "panel", "bokeh", "pipeline", "daqsim"])
    assert loaded == [], f"a worker process running an analysis imports {loaded}"
