"""The Dask executor, on a LocalCluster of 2 worker processes, gives what the local executor gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_settings, run_server, session, simulate

from dqm.db import migrate, queries
from dqm.db.models import RunStatus
from pipeline.executors import DaskExecutor


@pytest.mark.slow
def test_dask_results_identical_to_local(tmp_path: Path) -> None:
    from distributed import LocalCluster

    urls = {name: f"sqlite:///{tmp_path / f'{name}.sqlite'}" for name in ("local", "dask")}
    settings = {}
    for name, url in urls.items():
        migrate.upgrade(url)
        settings[name] = make_settings(tmp_path / name, url)
        simulate(settings[name], 400, n_files=4, events=60, seed=3)
        simulate(settings[name], 401, n_files=1, events=30, seed=4, run_type="laser")

    run_server(settings["local"])
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        # each file's chunks spread over the cluster too, through joblib's Dask backend
        run_server(settings["dask"], executor=executor, file_jobs=2)

    with session(settings["local"]) as a, session(settings["dask"]) as b:
        for run_id in (400, 401):
            assert queries.get_run(b, run_id=run_id).status is RunStatus.ALL_COMPLETED
            rows_a = queries.histogram_rows(a, run_id=run_id)
            rows_b = queries.histogram_rows(b, run_id=run_id)
            assert [r.name for r in rows_a] == [r.name for r in rows_b]
            assert {"nhits", "charge_pe", "occupancy"} <= {r.name for r in rows_a}
            for ra, rb in zip(rows_a, rows_b, strict=True):
                assert ra.values == rb.values and ra.axes == rb.axes and ra.entries == rb.entries
            for fa, fb in zip(
                queries.files_of_run(a, run_id=run_id),
                queries.files_of_run(b, run_id=run_id),
                strict=True,
            ):
                ha = queries.histogram_rows(a, run_id=run_id, file_id=fa.id)
                hb = queries.histogram_rows(b, run_id=run_id, file_id=fb.id)
                assert [h.values for h in ha] == [h.values for h in hb]
        # the analyses ran on the cluster too, with the same results
        jobs_b = queries.analysis_jobs(b, run_id=run_id)
        assert jobs_b and {j.state.value for j in jobs_b} == {"DONE"}
        values = {
            name: {
                (r.analysis, v.variable): v.value
                for r in queries.analysis_results(s, run_id=run_id)
                for v in r.values
                if v.variable != "data_complete_latency_s"  # a time, not a result
            }
            for name, s in (("local", a), ("dask", b))
        }
        assert values["dask"] == values["local"] and values["local"]
