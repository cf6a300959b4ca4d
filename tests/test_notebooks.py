"""Every notebook under notebooks/ runs from top to bottom without error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, tmp_path: Path, demo_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the small demo installation (its configuration reaches the kernel's environment)."""
    for name, value in demo_data.env.items():
        if name.startswith("DQM_"):
            monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].source.startswith("# "), "a notebook starts with a '# Title' cell"
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
