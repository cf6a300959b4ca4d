"""Faults injected on purpose, so that tests can prove the DQM finds them.

On the command line a fault is ``KIND`` or ``KIND:key=value,key=value``, e.g.
``dead:n=30``, ``hot:ids=17;4242,occupancy=0.9``, ``gain_drift:phi=0..30,fraction=-0.1``,
``corrupt:seq=2``. The kinds and their parameters (defaults in brackets):

================  ================================================================================
dead              PMTs that never fire: n [20] or ids
hot               PMTs that fire in nearly every event: n [5] or ids, occupancy [0.998] (the DQM's
                  default cuts call a PMT hot above 0.99)
noisy             PMTs with a high dark rate: n [10] or ids, rate_hz [500000]
gain_drift        gains of a group drift linearly over the files to (1 + fraction) at the last file:
                  phi [0..30] and theta [0..180] (degrees) or ids, fraction [-0.1]
time_shift        cable offsets of a group shift by shift_ns [5] from file from_seq [0] on:
                  phi [90..120], theta [0..180] or ids
ly_drop           light yield drops by fraction [0.1] from file from_seq [0] on
rate_burst        trigger rate times factor [5] during file seq [0]
corrupt           file seq [0] is written, then truncated (mode=truncate) or overwritten in the
                  middle with garbage (mode=garbage) [truncate]
missing           file seq [0] is announced but never delivered
================  ================================================================================

PMTs chosen by ``n`` are drawn with the run's seed, dead first, then hot, then noisy, so that the
groups never overlap; the manifest records the ids that were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dqm.detector import N_PMTS, load_pmts
from dqm.errors import InvalidValueError

#: Each kind's parameters and their defaults.
FAULT_KINDS: dict[str, dict[str, Any]] = {
    "dead": {"n": 20, "ids": None},
    "hot": {"n": 5, "ids": None, "occupancy": 0.998},
    "noisy": {"n": 10, "ids": None, "rate_hz": 500_000.0},
    "gain_drift": {"phi": (0.0, 30.0), "theta": (0.0, 180.0), "ids": None, "fraction": -0.1},
    "time_shift": {
        "phi": (90.0, 120.0),
        "theta": (0.0, 180.0),
        "ids": None,
        "shift_ns": 5.0,
        "from_seq": 0,
    },
    "ly_drop": {"fraction": 0.1, "from_seq": 0},
    "rate_burst": {"factor": 5.0, "seq": 0},
    "corrupt": {"seq": 0, "mode": "truncate"},
    "missing": {"seq": 0},
}

#: Kinds that select PMTs by number, in the order they draw from the shuffled PMTs.
COUNTED_KINDS = ("dead", "hot", "noisy")
#: Kinds that select a group of PMTs by a region of the sphere.
GROUP_KINDS = ("gain_drift", "time_shift")


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind and its parameters (defaults filled in)."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
        }


def _parse_value(kind: str, key: str, text: str) -> Any:
    default = FAULT_KINDS[kind][key]
    where = f"fault {kind}: {key}={text!r}"
    if key == "ids":
        try:
            ids = [int(part) for part in text.replace(";", " ").split()]
        except ValueError:
            raise InvalidValueError(f"{where} is not a list of PMT ids separated by ';'.") from None
        return ids
    if key == "mode":
        return text
    if isinstance(default, tuple):
        low, sep, high = text.partition("..")
        try:
            if sep:
                return (float(low), float(high))
        except ValueError:
            pass
        raise InvalidValueError(f"{where} is not a range such as 0..30 (degrees).")
    try:
        return int(text) if isinstance(default, int) else float(text)
    except ValueError:
        kind_name = "an integer" if isinstance(default, int) else "a number"
        raise InvalidValueError(f"{where} is not {kind_name}.") from None


def parse_fault(text: str) -> Fault:
    """Parse ``KIND[:key=value,...]`` (see the module doc).

    Raises:
        InvalidValueError: unknown kind or parameter, or a value of the wrong form.
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise InvalidValueError(
            f"unknown fault {kind!r}; known faults are {', '.join(FAULT_KINDS)}."
        )
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in FAULT_KINDS[kind]:
            known = ", ".join(FAULT_KINDS[kind]) or "none"
            raise InvalidValueError(
                f"fault {kind}: unknown parameter {item!r}; its parameters are {known}."
            )
        params[key] = _parse_value(kind, key, value.strip())
    return make_fault(kind, **params)


def make_fault(kind: str, **params: Any) -> Fault:
    """A fault of ``kind`` with the given parameters and the defaults for the others."""
    if kind not in FAULT_KINDS:
        raise InvalidValueError(
            f"unknown fault {kind!r}; known faults are {', '.join(FAULT_KINDS)}."
        )
    unknown = sorted(set(params) - set(FAULT_KINDS[kind]))
    if unknown:
        raise InvalidValueError(f"fault {kind}: unknown parameter {unknown[0]!r}.")
    merged = {**FAULT_KINDS[kind], **params}
    if merged.get("ids") is not None:
        merged["ids"] = [int(i) for i in merged["ids"]]
    for key in ("phi", "theta"):
        if key in merged:
            merged[key] = tuple(float(v) for v in merged[key])
    return Fault(kind, merged)


def validate_faults(faults: list[Fault], n_files: int) -> None:
    """Check that the faults make sense for a run of ``n_files`` files.

    Raises:
        InvalidValueError: the first problem, as one sentence.
    """
    seen: set[str] = set()
    for fault in faults:
        p = fault.params
        name = f"fault {fault.kind}"
        if fault.kind in seen:
            raise InvalidValueError(
                f"{name} is given twice; give it once (use ids= for several groups)."
            )
        seen.add(fault.kind)
        ids = p.get("ids")
        if ids is not None:
            bad = [i for i in ids if not 0 <= i < N_PMTS]
            if bad or not ids:
                raise InvalidValueError(
                    f"{name}: PMT ids must be in 0..{N_PMTS - 1}, got {bad or 'none'}."
                )
        if "n" in p and not 1 <= p["n"] <= 2000:
            raise InvalidValueError(f"{name}: n={p['n']} must be between 1 and 2000.")
        for key in ("seq", "from_seq"):
            if key in p and not 0 <= p[key] < n_files:
                raise InvalidValueError(
                    f"{name}: {key}={p[key]} is not a file of this run (0..{n_files - 1})."
                )
        if fault.kind == "hot" and not 0 < p["occupancy"] <= 1:
            raise InvalidValueError(f"{name}: occupancy={p['occupancy']} must be in (0, 1].")
        if fault.kind == "noisy" and not 0 < p["rate_hz"] <= 50e6:
            raise InvalidValueError(f"{name}: rate_hz={p['rate_hz']} must be in (0, 5e7].")
        if fault.kind == "gain_drift" and not -0.9 <= p["fraction"] <= 2:
            raise InvalidValueError(f"{name}: fraction={p['fraction']} must be between -0.9 and 2.")
        if fault.kind == "time_shift" and not abs(p["shift_ns"]) <= 500:
            raise InvalidValueError(f"{name}: shift_ns={p['shift_ns']} must be within ±500 ns.")
        if fault.kind == "ly_drop" and not 0 < p["fraction"] < 1:
            raise InvalidValueError(f"{name}: fraction={p['fraction']} must be in (0, 1).")
        if fault.kind == "rate_burst" and not 1 < p["factor"] <= 1000:
            raise InvalidValueError(f"{name}: factor={p['factor']} must be in (1, 1000].")
        if fault.kind == "corrupt" and p["mode"] not in ("truncate", "garbage"):
            raise InvalidValueError(f"{name}: mode={p['mode']!r} must be truncate or garbage.")
        for key, limit in (("phi", 180.0), ("theta", 180.0)):
            if key in p:
                low, high = p[key]
                lowest = -180.0 if key == "phi" else 0.0
                if not lowest <= low < high <= limit:
                    raise InvalidValueError(
                        f"{name}: {key}={low}..{high} must be an increasing range within {lowest}..{limit} degrees."
                    )
    seqs = [f.params["seq"] for f in faults if f.kind in ("corrupt", "missing")]
    if len(seqs) != len(set(seqs)):
        raise InvalidValueError(
            "faults corrupt and missing name the same file; give them different seq."
        )


def resolve_pmts(faults: list[Fault], seed: int) -> dict[str, list[int]]:
    """The PMT ids each PMT fault affects (drawn with the run's ``seed`` where chosen by number)."""
    rng = np.random.default_rng([seed, 0xFA017])
    shuffled = rng.permutation(N_PMTS)
    used = 0
    chosen: dict[str, list[int]] = {}
    by_kind = {f.kind: f for f in faults}
    for kind in COUNTED_KINDS:
        fault = by_kind.get(kind)
        if fault is None:
            continue
        if fault.params.get("ids") is not None:
            chosen[kind] = sorted(fault.params["ids"])
        else:
            n = fault.params["n"]
            chosen[kind] = sorted(int(i) for i in shuffled[used : used + n])
            used += n
    pmts = load_pmts()
    for kind in GROUP_KINDS:
        fault = by_kind.get(kind)
        if fault is None:
            continue
        if fault.params.get("ids") is not None:
            chosen[kind] = sorted(fault.params["ids"])
            continue
        phi_low, phi_high = fault.params["phi"]
        theta_low, theta_high = fault.params["theta"]
        inside = pmts["phi_deg"].between(phi_low, phi_high) & pmts["theta_deg"].between(
            theta_low, theta_high
        )
        chosen[kind] = [int(i) for i in pmts.loc[inside, "pmt_id"]]
        if not chosen[kind]:
            raise InvalidValueError(
                f"fault {kind}: the region phi={phi_low}..{phi_high}, theta={theta_low}..{theta_high} holds no PMT."
            )
    return chosen
