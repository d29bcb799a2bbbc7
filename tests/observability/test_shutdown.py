"""Graceful shutdown of ``retouch serve``: on SIGTERM it stops accepting connections,
finishes the requests in flight (up to ``RETOUCH_SHUTDOWN_TIMEOUT``) and exits."""

from __future__ import annotations

import base64
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from tests.images import decode, png
from tests.observability.conftest import retouch_serve
from tests.providers.fake_openai import (
    GRAY_PNG,
    FakeOpenAI,
    held_reply,
    running_fake,
)

UPSTREAM_KEY = "sk-slow-upstream-key-0123456789"


@pytest.fixture
def slow_upstream(monkeypatch) -> Iterator[tuple[FakeOpenAI, threading.Event]]:
    """An upstream that holds every edit until the test sets the event."""
    monkeypatch.setenv("SLOW_UPSTREAM_KEY", UPSTREAM_KEY)
    release = threading.Event()
    with running_fake(FakeOpenAI(key=UPSTREAM_KEY)) as fake:
        fake.reply = held_reply(release)
        try:
            yield fake, release
        finally:
            release.set()


def serve_env(tmp_path, fake: FakeOpenAI, shutdown_timeout: float) -> dict[str, str]:
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "id": "slow", "provider": "openai_compatible", "api_base": f"{fake.url}/v1",
        "api_key_env": "SLOW_UPSTREAM_KEY", "retries": 0}]}))
    return {"RETOUCH_MODELS_FILE": str(models), "RETOUCH_SHUTDOWN_TIMEOUT": str(shutdown_timeout)}


def send_edit(base: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/images/edits", data={"prompt": "grayscale", "model": "slow", "response_format": "b64_json"},
                      files={"image": ("a.png", png(), "image/png")}, timeout=60)


def test_sigterm_finishes_the_request_in_flight_and_refuses_new_connections(tmp_path, slow_upstream):
    fake, release = slow_upstream
    with retouch_serve(tmp_path, serve_env(tmp_path, fake, 30)) as served, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send_edit, served.base)
        wait_for(lambda: fake.submissions == 1)
        served.process.send_signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(served.port))
        assert served.process.poll() is None and not pending.done()  # still finishing the edit
        release.set()
        answer = pending.result(timeout=60)
        served.process.wait(30)
    assert answer.status_code == 200, answer.text
    assert decode(base64.b64decode(answer.json()["data"][0]["b64_json"])).shape == decode(GRAY_PNG).shape
    assert served.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


def test_requests_still_running_at_the_deadline_are_cut_off(tmp_path, slow_upstream):
    fake, release = slow_upstream
    with retouch_serve(tmp_path, serve_env(tmp_path, fake, 1)) as served, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send_edit, served.base)
        wait_for(lambda: fake.submissions == 1)
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(30)  # the upstream still holds the edit: only the deadline ends it
        assert not release.is_set()
        outcome = pending.exception(timeout=60) or pending.result()
    assert served.process.returncode in (0, -signal.SIGTERM)
    assert isinstance(outcome, httpx.HTTPError) or outcome.status_code >= 500


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
