"""Six finished physics runs with an energy-scale result each and some check results and an alarm:
what the tests of back-testing, quality and alarms judge (no histogram, no PMT statistics)."""

from __future__ import annotations

import datetime as dt

from dqm.alarms import alarm_key
from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.session import transaction

START = dt.datetime(2026, 11, 1, 8, 0)
#: The 210Po peak of runs 101..106 (105 is low: outside the band of energy_po210_peak).
PEAKS = {101: 0.450, 102: 0.451, 103: 0.4535, 104: 0.449, 105: 0.443, 106: 0.452}


def fill_judged_runs(url: str) -> str:
    """Add the runs 101..106 to the migrated database at ``url``; returns ``url``."""
    with transaction(url) as s:
        for run_id, peak in PEAKS.items():
            queries.add_run(
                s,
                run_id=run_id,
                run_type="physics",
                start_time=START + dt.timedelta(hours=run_id),
                end_time=START + dt.timedelta(hours=run_id, minutes=50),
                status="All Completed",
            )
            queries.save_analysis_result(
                s,
                analysis="energy_scale",
                version=1,
                run_id=run_id,
                values=[queries.StoredValue("po210_peak_mev", peak, 0.001, "MeV")],
                data={},
                lineage={},
            )
        queries.save_check_results(
            s,
            run_id=105,
            results=[
                queries.NewCheckResult(
                    "energy_po210_peak", 1, "analyses", Quality.WARNING, "peak low"
                ),
                queries.NewCheckResult(
                    "pmt_classes", 1, "pmt", Quality.BAD, "31 dead (30 new)", reference_run=104
                ),
            ],
        )
        for run_id in (101, 102, 103, 104):
            queries.save_check_results(
                s,
                run_id=run_id,
                results=[queries.NewCheckResult("pmt_classes", 1, "pmt", Quality.GOOD, "fine")],
            )
        queries.raise_alarm(
            s,
            key=alarm_key("pmt_classes", 105),
            kind="check",
            severity=Quality.BAD,
            sentence="run 105, check pmt_classes: 31 dead",
            check_name="pmt_classes",
            run_id=105,
            run_type="physics",
        )
    return url
