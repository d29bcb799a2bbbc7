"""Helpers for the observability tests: reading /metrics (``retouch serve`` as a process
lives in tests/servers.py)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import retouch_serve  # noqa: F401 - the observability tests import it from here


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` whose labels include ``labels`` in an exposition
    ``text``; 0 when there is none (a counter never incremented is not shown)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def scrape(base: str) -> str:
    answer = httpx.get(f"{base}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return answer.text
