"""``/readyz``: named checks registered on the app, each within a timeout."""

from __future__ import annotations

import anyio
import httpx
import pytest

from retouch.app import create_app
from retouch.observability.readiness import ReadinessChecks, ping_redis
from tests.backing import free_port
from tests.servers import serving


async def passes() -> None:
    return None


async def fails() -> None:
    raise RuntimeError("cannot reach postgresql://app:hunter2@db.internal:5432/retouch")


async def hangs() -> None:
    await anyio.sleep_forever()


def readyz(settings, **checks) -> httpx.Response:
    app = create_app(settings)
    for name, check in checks.items():
        app.state.readiness.add(name, check)
    app.state.readiness.timeout = 0.5
    with serving(app) as url:
        return httpx.get(f"{url}/readyz", timeout=30)


def test_ready_when_every_check_passes(settings):
    answer = readyz(settings, first=passes, second=passes)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready" and {"first": "ok", "second": "ok"}.items() <= body["checks"].items()
    assert set(body["checks"].values()) == {"ok"}  # whatever else is registered passes too


def test_not_ready_names_the_failing_check_and_keeps_its_secrets(settings):
    answer = readyz(settings, fine=passes, database_replica=fails)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready" and body["checks"]["fine"] == "ok"
    assert body["checks"]["database_replica"] == "cannot reach postgresql://app:[redacted]@db.internal:5432/retouch"
    assert "hunter2" not in answer.text


def test_a_check_that_hangs_fails_at_its_timeout(settings):
    answer = readyz(settings, stuck=hangs, fine=passes)
    assert answer.status_code == 503
    assert answer.json()["checks"]["stuck"] == "no answer within 0.5 s"
    assert answer.json()["checks"]["fine"] == "ok"


def test_redis_reachable_is_ready(settings, redis_url):
    answer = readyz(settings, redis=lambda: ping_redis(redis_url))
    assert answer.status_code == 200 and answer.json()["checks"]["redis"] == "ok"


def test_redis_on_a_closed_port_is_not_ready(settings):
    port = free_port()  # bound, then closed: nothing listens there
    answer = readyz(settings, redis=lambda: ping_redis(f"redis://127.0.0.1:{port}/0"))
    assert answer.status_code == 503
    assert f"127.0.0.1:{port}" in answer.json()["checks"]["redis"]


def test_a_name_is_registered_once():
    checks = ReadinessChecks()
    checks.add("database", passes)
    with pytest.raises(ValueError, match="database"):
        checks.add("database", passes)
