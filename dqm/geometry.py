"""Generator of the large-PMT layout, ``data/pmt_positions.csv``.

The layout follows the public description of a JUNO-like central detector: 17,612 large PMTs whose
centres sit on a sphere of radius 19.434 m, arranged in 120 latitude rings plus a cap of 21 tubes at
each pole. Within a ring the tubes are evenly spaced; neighbouring rings are staggered by half a slot.
About one ring in five leaves 20-30 slots empty (supports and calibration ports). About 5,000 tubes are
Hamamatsu dynode PMTs, scattered over the sphere; the rest are NNVT MCP-PMTs.

The layout is deterministic: running this module twice gives the same file byte for byte::

    python -m dqm.geometry            # writes data/pmt_positions.csv of the checkout
    python -m dqm.geometry -o out.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

#: Radius of the sphere of PMT centres, in mm.
PMT_RADIUS_MM = 19_434.0
#: Number of large PMTs.
N_PMTS = 17_612
#: Number of latitude rings between the two polar caps.
N_RINGS = 120
#: Number of Hamamatsu dynode PMTs; the others are NNVT MCP-PMTs.
N_HAMAMATSU = 5_000
#: Tubes in each polar cap, by concentric circle (centre, inner circle, outer circle).
CAP_CIRCLES = (1, 7, 13)
#: Distance of the cap circles from the pole, along the sphere, in mm.
CAP_CIRCLE_ARC_MM = (0.0, 560.0, 1_090.0)
#: Polar angle of the first latitude ring, in degrees (one ring pitch beyond the outer cap circle).
FIRST_RING_THETA_DEG = 4.75
#: Every how many rings one leaves slots empty, and the range of empty slots in such a ring.
EMPTY_RING_PERIOD = 5
EMPTY_SLOTS_RANGE = (20, 30)
#: Seed of the (fixed) assignment of PMT types.
TYPE_SEED = 20_140_612

PMT_TYPES = ("NNVT", "Hamamatsu")
COLUMNS = ("pmt_id", "x_mm", "y_mm", "z_mm", "theta_deg", "phi_deg", "type")


def _ring_thetas() -> npt.NDArray[np.float64]:
    """Polar angles (rad) of the 120 latitude rings, evenly pitched and symmetric about the equator."""
    first = math.radians(FIRST_RING_THETA_DEG)
    return np.linspace(first, math.pi - first, N_RINGS)


def _empty_slots(ring: int) -> int:
    """Number of empty slots of a ring (deterministic pattern, 20-30 in every fifth ring)."""
    if ring % EMPTY_RING_PERIOD != 2:
        return 0
    low, high = EMPTY_SLOTS_RANGE
    return low + (ring * 7) % (high - low + 1)


def _ring_counts(
    thetas: npt.NDArray[np.float64], n_tubes: int
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.int_]]:
    """Slots and tubes per ring such that the rings hold exactly ``n_tubes``.

    The slot spacing along the rings is found by bisection; the remainder left by rounding is spread
    over the rings closest to the equator, keeping the layout symmetric where possible.
    """
    circumference = 2 * math.pi * PMT_RADIUS_MM * np.sin(thetas)
    empties = np.array([_empty_slots(i) for i in range(len(thetas))], dtype=np.int_)

    def tubes(spacing: float) -> npt.NDArray[np.int_]:
        return np.floor(circumference / spacing).astype(int) - empties

    low, high = 400.0, 700.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        if tubes(mid).sum() > n_tubes:
            low = mid
        else:
            high = mid
    counts = tubes(high)
    # Distribute the remainder (a few tubes) to the equatorial rings, alternating either side.
    order = np.argsort(np.abs(thetas - math.pi / 2), kind="stable")
    for k in range(n_tubes - counts.sum()):
        counts[order[k % len(order)]] += 1
    return counts + empties, counts


def _cap(north: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    thetas, phis = [], []
    for k, (n, arc) in enumerate(zip(CAP_CIRCLES, CAP_CIRCLE_ARC_MM, strict=True)):
        theta = arc / PMT_RADIUS_MM
        offset = 0.5 * (k % 2) * 2 * math.pi / n
        for j in range(n):
            thetas.append(theta if north else math.pi - theta)
            phis.append((offset + 2 * math.pi * j / n) % (2 * math.pi))
    return np.array(thetas), np.array(phis)


def generate_layout() -> pd.DataFrame:
    """The PMT table: ``pmt_id, x_mm, y_mm, z_mm, theta_deg, phi_deg, type``.

    PMT ids run from 0 at the north pole (z > 0) to 17,611 at the south pole, ring by ring and
    by increasing azimuth within a ring. Azimuths are in degrees in [-180, 180).
    """
    import pandas as pd  # here, not at the top: simulation workers import this module

    thetas = _ring_thetas()
    n_in_cap = sum(CAP_CIRCLES)
    slots, counts = _ring_counts(thetas, N_PMTS - 2 * n_in_cap)

    all_theta = [_cap(north=True)[0]]
    all_phi = [_cap(north=True)[1]]
    for i, (theta, n_slots, n_tubes) in enumerate(zip(thetas, slots, counts, strict=True)):
        offset = 0.5 * (i % 2) * 2 * math.pi / n_slots
        slot_phi = offset + 2 * math.pi * np.arange(n_slots) / n_slots
        n_empty = n_slots - n_tubes
        if n_empty:
            # Leave a contiguous gap of empty slots, at an azimuth that turns from ring to ring.
            start = (i * 37) % n_slots
            keep = np.ones(n_slots, dtype=bool)
            keep[(start + np.arange(n_empty)) % n_slots] = False
            slot_phi = slot_phi[keep]
        all_theta.append(np.full(n_tubes, theta))
        all_phi.append(slot_phi)
    all_theta.append(_cap(north=False)[0])
    all_phi.append(_cap(north=False)[1])

    theta = np.concatenate(all_theta)
    phi = np.concatenate(all_phi)
    phi = (phi + math.pi) % (2 * math.pi) - math.pi  # [-pi, pi)
    assert theta.size == N_PMTS, theta.size

    rng = np.random.default_rng(TYPE_SEED)
    is_hamamatsu = np.zeros(N_PMTS, dtype=bool)
    is_hamamatsu[rng.choice(N_PMTS, size=N_HAMAMATSU, replace=False)] = True

    sin_theta = np.sin(theta)
    table = pd.DataFrame(
        {
            "pmt_id": np.arange(N_PMTS, dtype=np.int32),
            "x_mm": PMT_RADIUS_MM * sin_theta * np.cos(phi),
            "y_mm": PMT_RADIUS_MM * sin_theta * np.sin(phi),
            "z_mm": PMT_RADIUS_MM * np.cos(theta),
            "theta_deg": np.degrees(theta),
            "phi_deg": np.degrees(phi),
            "type": np.where(is_hamamatsu, PMT_TYPES[1], PMT_TYPES[0]),
        }
    )
    return table


def write_csv(path: str | Path) -> Path:
    """Write the layout to ``path`` as CSV (coordinates rounded to 0.1 mm, angles to 1e-4 degree)."""
    table = generate_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(
        path,
        index=False,
        columns=list(COLUMNS),
        float_format="%.4f",
        lineterminator="\n",
    )
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m dqm.geometry [-o PATH]``."""
    from dqm.paths import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o",
        "--output",
        default=str(PROJECT_ROOT / "data" / "pmt_positions.csv"),
        help="where to write the CSV (default: data/pmt_positions.csv of the checkout)",
    )
    args = parser.parse_args(argv)
    path = write_csv(args.output)
    print(f"wrote {N_PMTS} PMT positions to {path}")


if __name__ == "__main__":
    main()
