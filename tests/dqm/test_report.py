"""A run's report: one self-contained HTML file (no external resource), every figure a real plot
(decodes, not blank), what the run holds escaped; `dqm report` writes it, or says why not."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from dqm.cli import cli
from dqm.db import queries
from dqm.db.session import transaction
from dqm.report import run_report


def images(text: str) -> list[np.ndarray]:
    found = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L")) for b in found]


def test_a_report_is_self_contained_with_real_plots(demo_data, tmp_path: Path) -> None:
    import demo

    with transaction(demo_data.database_url) as s:
        text = run_report(s, run_id=demo.FAULTY_RUN)
        sentences = [r.sentence for r in queries.check_results(s, run_id=demo.FAULTY_RUN)]
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>")
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text)  # nothing from elsewhere
    assert "<script" not in text and "<link" not in text
    for sentence in sentences:
        assert sentence.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    drawn = images(text)
    assert len(drawn) >= 15  # the key histograms, the analyses' trends
    for image in drawn:
        assert image.shape[0] > 50 and image.shape[1] > 100
        assert image.std() > 5, "a blank figure"
    for section in ("Checks", "Histograms", "Analyses", "PMT changes", "Processing", "Provenance"):
        assert f"<h2>{section}</h2>" in text
    # the stored classes of the faulty run, with the dead PMTs the simulator made
    assert f"Stored classes: {len(demo_data.dead)} dead, {len(demo_data.hot)} hot" in text
    assert f"<td>newly dead</td><td>{len(demo_data.dead)}</td>" in text
    assert "No PMT mask: the reconstruction used every PMT." in text


def test_dqm_report_writes_the_file_or_says_why_not(demo_data, tmp_path: Path, monkeypatch) -> None:
    import demo

    monkeypatch.chdir(tmp_path)
    env = {"DQM_DATABASE_URL": demo_data.database_url, "USER": "ana"}
    done = CliRunner().invoke(cli, ["report", str(demo.GOOD_RUN)], env=env)
    assert done.exit_code == 0 and f"report written to run{demo.GOOD_RUN}.html" in done.output
    assert (tmp_path / f"run{demo.GOOD_RUN}.html").read_text().endswith("</html>")
    missing = CliRunner().invoke(cli, ["report", "999999"], env=env)
    assert missing.exit_code == 2 and "run 999999 does not exist" in missing.output
    nowhere = CliRunner().invoke(
        cli, ["report", str(demo.GOOD_RUN), "-o", str(tmp_path / "no" / "r.html")], env=env
    )
    assert nowhere.exit_code == 2 and "cannot write" in nowhere.output
    assert len(nowhere.output.strip().splitlines()) == 1
