"""Reading /metrics and /health over HTTP as Prometheus and a load balancer do (the tests of the
job server's and the dashboard's metrics)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

#: A scrape: the value of each sample, by its name and its labels.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    """``base_url/metrics``, parsed with Prometheus's own parser."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly these labels (KeyError if it is not there)."""
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include these."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def health(base_url: str) -> tuple[int, dict[str, Any]]:
    """``base_url/health``: its status and its JSON body."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("application/json")
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            assert error.headers["Content-Type"].startswith("application/json")
            return error.code, json.loads(error.read())


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``predicate`` until it gives something true; that."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can export (a counter's ``_total``, a histogram's
    ``_bucket``, ``_count`` and ``_sum``), whether or not it holds samples now."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
