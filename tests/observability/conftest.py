"""Helpers for the observability tests: reading /metrics, and `retouch serve` as a process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.backing import free_port


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


@dataclass
class ServeProcess:
    """``retouch serve`` running as its own process; ``log`` collects its stderr."""

    process: subprocess.Popen
    base: str
    port: int
    log: Path

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextlib.contextmanager
def retouch_serve(tmp_path: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[ServeProcess]:
    """Start ``retouch serve`` on a free port with ``env`` added to this environment, wait
    until it answers /healthz, and stop it (SIGTERM, then SIGKILL) on the way out."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    environment = {**os.environ, "RETOUCH_DATA_DIR": str(tmp_path / "var"), **(env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "retouch.cli", "serve", "--port", str(port), *args],
                                   cwd=tmp_path, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    served = ServeProcess(process, f"http://127.0.0.1:{port}", port, log)
    try:
        _wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_healthy(served: ServeProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"retouch serve exited with {served.process.returncode}:\n"
                               + served.log.read_text(errors="replace"))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{served.base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("retouch serve did not answer /healthz in time:\n" + served.log.read_text(errors="replace"))
