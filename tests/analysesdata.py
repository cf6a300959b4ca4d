"""A small database of analysis results for the dashboard's tests, made with the real queries."""

from __future__ import annotations

import datetime as dt

from dqm.analyses.declarations import Declaration, VariableSpec
from dqm.db import queries
from dqm.db.models import JobState, RunStatus
from dqm.db.session import transaction
from dqm.times import utcnow

FIRST_RUN, N_RUNS = 100, 20
#: Runs of another type, and the runs' tags.
CALIBRATION_RUNS = {105, 110}
TAGS = {103: ["bad"], 104: ["messy"], 106: ["good", "messy"]}
#: A small PNG (1×1 pixel).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101005f0f8a6b0000000049454e44ae426082"
)

#: The declaration the tests record, as the loader records one (Declaration.to_json).
ENERGY_SCALE = Declaration(
    name="energy_scale",
    version=1,
    description="Position of the 2.2 MeV neutron-capture peak.",
    function="dqm.analyses.builtin.energy:energy_scale",
    requires=("event_table",),
    timeout_s=600,
    variables={
        "peak_mev": VariableSpec("peak_mev", "MeV", "fitted peak position", (2.1, 2.3)),
        "resolution": VariableSpec("resolution", "%", "relative width of the peak", optional=True),
    },
).to_json()


def start_of(run_id: int, now: dt.datetime) -> dt.datetime:
    """Run ``k`` started ``N_RUNS - k`` days before ``now``."""
    return now - dt.timedelta(days=FIRST_RUN + N_RUNS - run_id, hours=1)


def peak(run_id: int) -> float:
    """The peak of a run: inside the band but for runs 107 and 113."""
    return {107: 2.5, 113: 1.9}.get(run_id, 2.2 + 0.001 * (run_id - FIRST_RUN))


def save_result(url: str, run_id: int, *, version: int = 1, peak_mev: float | None = None) -> None:
    with transaction(url) as s:
        queries.save_analysis_result(
            s,
            analysis="energy_scale",
            version=version,
            run_id=run_id,
            values=[
                queries.StoredValue(
                    "peak_mev", peak(run_id) if peak_mev is None else peak_mev, 0.01, "MeV"
                ),
                queries.StoredValue("resolution", 3.0, None, "%"),
            ],
            data={"n_events": 1000},
            lineage={
                "code_version": "1.2.0",
                "calibration_version": 3,
                "rec_method": "tlh",
                "events_used": 1000,
                "files": [f"/raw/{run_id}.0.root"],
            },
            figures={"peak": PNG},
        )


def add_run(url: str, run_id: int, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    with transaction(url) as s:
        queries.add_run(
            s,
            run_id=run_id,
            run_type="calibration" if run_id in CALIBRATION_RUNS else "physics",
            start_time=start_of(run_id, now),
            end_time=start_of(run_id, now) + dt.timedelta(minutes=30),
            status=RunStatus.ALL_COMPLETED,
            n_events=1000,
            n_files=1,
        )
        if run_id in TAGS:
            queries.change_run_tags(s, run_id=run_id, add=TAGS[run_id], user="shifter")


def fill(url: str) -> None:
    """Runs 100–119 with energy_scale v1 results (v2 declared, none stored), a version of an
    undeclared analysis on two runs, and on run 119 a failed job of v2 and a waiting one of
    legacy."""
    now = utcnow()
    for run_id in range(FIRST_RUN, FIRST_RUN + N_RUNS):
        add_run(url, run_id, now)
        save_result(url, run_id)
    with transaction(url) as s:
        queries.record_analysis_declaration(
            s, name="energy_scale", version=1, declaration=ENERGY_SCALE, origin="analyses.toml"
        )
        queries.record_analysis_declaration(
            s,
            name="energy_scale",
            version=2,
            declaration=dict(ENERGY_SCALE, version=2),
            origin="analyses.toml",
        )
        for run_id in (101, 102):
            queries.save_analysis_result(
                s,
                analysis="legacy",
                version=3,
                run_id=run_id,
                values=[queries.StoredValue("dark_rate", 20.0, 1.0, "kHz")],
                data={},
                lineage={},
            )
        last = FIRST_RUN + N_RUNS - 1
        failed = queries.add_job(
            s, kind="analysis", run_id=last, analysis="energy_scale", analysis_version=2
        )
        failed.state, failed.error = JobState.FAILED, "the fit of the peak did not converge."
        failed.traceback = 'Traceback (most recent call last):\n  File "fit.py"\nRuntimeError'
        queries.add_job(s, kind="analysis", run_id=last, analysis="legacy", analysis_version=3)
