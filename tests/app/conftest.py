"""Fixtures of the dashboard's tests."""

from __future__ import annotations

import numpy as np
import pytest

from dqm import detector


@pytest.fixture
def pmt_rates() -> tuple[np.ndarray, np.ndarray]:
    """Hit rates and mean charges (PE) of every PMT: 52 dead under the default cuts (12 of them
    alive under a dead cut below 0.005), 8 hot, 15 other of which 5 without statistics."""
    n = detector.N_PMTS
    rate = np.full(n, 0.10)
    rate[:40] = 0.0  # dead
    rate[40:48] = 1.0  # hot
    rate[48:60] = 0.005  # dead under the default cut, alive under a lower one
    rate[60:70] = 0.30  # between the normal band and the hot cut: other
    rate[70:75] = np.nan  # no statistics
    charge = np.where(np.isnan(rate), np.nan, 1.1)
    return rate, charge
