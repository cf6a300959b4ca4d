"""Worker processes import the processing stages only: no database layer, no dashboard."""

from __future__ import annotations

import subprocess
import sys


def test_the_stages_import_neither_sqlalchemy_nor_panel() -> None:
    code = (
        "import sys, pipeline.stages.processing, pipeline.stages.merge, pipeline.stages.laser; "
        "print(' '.join(m for m in ('sqlalchemy', 'panel', 'bokeh') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == [], f"a worker process imports {loaded}"
