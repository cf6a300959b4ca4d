"""Fixtures of the analysis tests: where the simulated runs are written (once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dqm.config import Settings, load_settings


@pytest.fixture(scope="session")
def analysis_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose data directory receives the simulated runs and their truth."""
    return load_settings(env={"DQM_DATA_DIR": str(tmp_path_factory.mktemp("analyses"))})
