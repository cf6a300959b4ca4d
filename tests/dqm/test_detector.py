"""The PMT layout in data/pmt_positions.csv and the Aitoff projection of the PMT map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from dqm import detector, geometry


@pytest.fixture(scope="module")
def pmts() -> pd.DataFrame:
    return detector.load_pmts()


def test_the_shipped_csv_is_what_the_generator_writes(tmp_path: Path) -> None:
    regenerated = geometry.write_csv(tmp_path / "pmt_positions.csv")
    assert regenerated.read_bytes() == detector.PMT_POSITIONS_CSV.read_bytes()


def test_ids_count_and_columns(pmts: pd.DataFrame) -> None:
    assert len(pmts) == 17_612 == detector.N_PMTS
    np.testing.assert_array_equal(pmts["pmt_id"], np.arange(17_612))
    header = detector.PMT_POSITIONS_CSV.read_text().splitlines()[0]
    assert header == "pmt_id,x_mm,y_mm,z_mm,theta_deg,phi_deg,type"


def test_all_on_the_pmt_sphere(pmts: pd.DataFrame) -> None:
    radius = np.sqrt(pmts.x_mm**2 + pmts.y_mm**2 + pmts.z_mm**2)
    np.testing.assert_allclose(radius, 19_434.0, atol=0.2)  # CSV rounds to 0.1 mm
    theta = np.degrees(np.arccos(pmts.z_mm / radius))
    np.testing.assert_allclose(theta, pmts.theta_deg, atol=1e-3)
    phi = np.degrees(np.arctan2(pmts.y_mm, pmts.x_mm))
    dphi = (phi - pmts.phi_deg + 180) % 360 - 180
    assert np.abs(dphi[pmts.theta_deg.between(0.01, 179.99)]).max() < 1e-3


def test_rings_and_caps(pmts: pd.DataFrame) -> None:
    per_ring = pmts.groupby(pmts.theta_deg.round(3)).size()
    north_cap = pmts.theta_deg < 4.0
    south_cap = pmts.theta_deg > 176.0
    assert north_cap.sum() == south_cap.sum() == 21
    rings = per_ring[(per_ring.index > 4.0) & (per_ring.index < 176.0)]
    assert len(rings) == 120
    pitch = np.diff(rings.index.to_numpy())
    assert 1.35 <= pitch.min() and pitch.max() <= 1.57
    assert 210 <= rings.max() <= 235  # tubes on the widest ring, at the equator


def test_neighbour_spacing(pmts: pd.DataFrame) -> None:
    xyz = pmts[["x_mm", "y_mm", "z_mm"]].to_numpy()
    distance, _ = cKDTree(xyz).query(xyz, k=5)
    nearest = distance[:, 1]
    assert nearest.min() > 450  # no two tubes on top of each other
    assert 480 < np.median(nearest) < 560
    assert 510 < distance[:, 1:5].mean() < 555  # ~533 mm between neighbours


def test_types(pmts: pd.DataFrame) -> None:
    counts = pmts["type"].value_counts()
    assert set(counts.index) == {"NNVT", "Hamamatsu"}
    assert counts["Hamamatsu"] == 5_000
    assert counts["NNVT"] == 17_612 - 5_000
    # Scattered over the sphere, not clustered in one hemisphere.
    north = pmts[pmts.z_mm > 0]
    assert 0.25 < (north["type"] == "Hamamatsu").mean() < 0.32


def test_loaded_once(pmts: pd.DataFrame) -> None:
    assert detector.load_pmts() is pmts


def test_aitoff_projection() -> None:
    x, y = detector.aitoff(
        np.array([90.0, 0.0, 180.0, 90.0, 90.0]), np.array([0.0, 0.0, 0.0, 180.0, -90.0])
    )
    np.testing.assert_allclose(x[:3], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(y[:3], [0, 90, -90], atol=1e-9)
    np.testing.assert_allclose(x[3], 180, atol=1e-9)  # the map's edge
    np.testing.assert_allclose(x[4], -2 * np.degrees(np.sin(np.pi / 4)) / np.sinc(0.25), atol=1e-9)


def test_aitoff_map_fills_the_ellipse(pmts: pd.DataFrame) -> None:
    x, y = pmts.aitoff_x.to_numpy(), pmts.aitoff_y.to_numpy()
    assert np.all((x / 180) ** 2 + (y / 90) ** 2 <= 1 + 1e-9)
    assert x.min() < -170 and x.max() > 170 and y.min() < -85 and y.max() > 85


def test_a_foreign_table_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("pmt_id,x_mm\n0,1\n")
    with pytest.raises(ValueError, match="lacks the column"):
        detector.load_pmts(bad)
    with pytest.raises(FileNotFoundError):
        detector.load_pmts(tmp_path / "none.csv")
