"""The JSON API under load: ``/api/runs`` on a database of 100,000 runs, 8 clients at once.

    .venv/bin/python bench/api.py [--runs 100000] [--clients 8] [--seconds 15]

Fills an SQLite database with ``--runs`` runs (as ``bench/recent_runs.py`` does), starts
``dqm serve`` on it (the rate limit off: the clients are all one address), and has ``--clients``
threads, each with a kept-alive connection, ask for pages of 100 runs at random places
(``/api/runs?limit=100&after=R``) for ``--seconds``. Figures (the last line is one JSON object):
``requests_per_s``, ``p50_ms`` and ``p95_ms`` of the latency each client saw, ``errors``.
Goals: ≥ 200 requests a second, p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _benchpath import fill_runs, print_figures

from dqm.db import migrate
from dqm.db.session import dispose_engines

FIRST_RUN = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dqm-api-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dqm.sqlite'}"
        migrate.upgrade(url)
        fill_runs(url, args.runs)
        dispose_engines()
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DQM_")},
            "DQM_DATA_DIR": tmp,
            "DQM_DATABASE_URL": url,
            "DQM_API_RATE": "0",
        }
        log = (Path(tmp) / "serve.log").open("w")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "dqm"), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("dqm serve did not start") from None
                    time.sleep(0.2)
            latencies: list[list[float]] = [[] for _ in range(args.clients)]
            errors = [0] * args.clients
            start = threading.Barrier(args.clients + 1)
            stop_at = [0.0]

            def client(k: int) -> None:
                rng = random.Random(k)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                start.wait()
                while time.perf_counter() < stop_at[0]:
                    after = FIRST_RUN + rng.randrange(args.runs)
                    began = time.perf_counter()
                    connection.request("GET", f"/api/runs?limit=100&after={after}")
                    answer = connection.getresponse()
                    body = answer.read()
                    latencies[k].append(time.perf_counter() - began)
                    if answer.status != 200 or "items" not in json.loads(body):
                        errors[k] += 1
                connection.close()

            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            for thread in threads:
                thread.start()
            began = time.perf_counter()
            stop_at[0] = began + args.seconds
            start.wait()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    every = np.array([t for per_client in latencies for t in per_client])
    print_figures(
        {
            "runs": args.runs,
            "clients": args.clients,
            "requests": int(every.size),
            "requests_per_s": round(every.size / wall, 1),
            "p50_ms": round(float(np.percentile(every, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(every, 95)) * 1000, 1),
            "errors": int(sum(errors)),
        }
    )


if __name__ == "__main__":
    main()
