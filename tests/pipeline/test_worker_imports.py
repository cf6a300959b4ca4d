"""Worker processes import the processing stages only: no database layer, no dashboard."""

from __future__ import annotations

from imports import modules_loaded


def test_the_stages_import_neither_sqlalchemy_nor_panel() -> None:
    stages = ["pipeline.stages.processing", "pipeline.stages.merge", "pipeline.stages.laser"]
    loaded = modules_loaded(stages, ["sqlalchemy", "panel", "bokeh"])
    assert loaded == [], f"a worker process imports {loaded}"
