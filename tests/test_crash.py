"""``kill -9`` in the middle of requests: after a restart the database has no half-written
rows that break anything and storage has no partial file under a final name."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from retouch.storage.base import is_valid_name
from tests.images import gradient, png
from tests.servers import retouch_serve

ADMIN_KEY = "crash-admin-key-0123456789"
BIG = png(gradient(1600, 1200))  # outputs of a few MB: writes take long enough to be cut


def hammer(base: str, key: str, stop: threading.Event, done: list[int]) -> None:
    """Send URL-delivered edits back to back until ``stop``; count the answers."""
    with httpx.Client(base_url=base, timeout=60, headers={"authorization": f"Bearer {key}"}) as client:
        while not stop.is_set():
            try:
                answer = client.post("/v1/images/edits", data={"prompt": "invert the colours"},
                                     files={"image": ("big.png", BIG, "image/png")})
            except httpx.HTTPError:
                return  # the server is gone
            done.append(answer.status_code)


def test_kill_9_mid_request_leaves_no_broken_rows_or_partial_files(tmp_path):
    env = {"RETOUCH_ADMIN_KEY": ADMIN_KEY}
    stop, done = threading.Event(), []
    with retouch_serve(tmp_path, env) as served:
        key = httpx.post(f"{served.base}/admin/keys", json={"name": "crash", "rpm": 10_000},
                         headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["key"]
        workers = [threading.Thread(target=hammer, args=(served.base, key, stop, done)) for _ in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 60
        while len(done) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        served.process.kill()  # SIGKILL: no shutdown code runs
        served.process.wait(10)
        stop.set()
        for worker in workers:
            worker.join(30)
    assert done and set(done) == {200}

    data = tmp_path / "var"
    assert_every_final_file_is_whole(data / "files")
    with sqlite3.connect(data / "retouch.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT status, latency_ms, endpoint FROM usage").fetchall()
    assert all(status == 200 and latency > 0 and endpoint == "edits" for status, latency, endpoint in rows)

    with retouch_serve(tmp_path, env) as again:  # the same data directory and database
        assert httpx.get(f"{again.base}/readyz").status_code == 200
        answer = httpx.post(f"{again.base}/v1/images/edits", headers={"authorization": f"Bearer {key}"},
                            data={"prompt": "grayscale"}, files={"image": ("a.png", png(gradient(8, 8)), "image/png")})
        assert answer.status_code == 200
        assert requests_logged(again.base, len(rows) + 1) == len(rows) + 1  # the log goes on where it stopped


def requests_logged(base: str, expected: int) -> int:
    """Requests in the usage log, once ``expected`` are there (rows go in batches) or 10 s on."""
    deadline = time.monotonic() + 10
    while True:
        usage = httpx.get(f"{base}/admin/usage", params={"since": "1h"},
                          headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert usage.status_code == 200
        logged = sum(row["requests"] for row in usage.json()["data"])
        if logged >= expected or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


def assert_every_final_file_is_whole(directory: Path) -> None:
    finals = [path for path in directory.rglob("*") if path.is_file() and is_valid_name(path.name)]
    assert finals, "the server stored nothing before it was killed"
    for path in finals:
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
            assert image.size == (1600, 1200) or image.size == (8, 8)
    strays = [p.name for p in directory.rglob("*") if p.is_file() and not is_valid_name(p.name)]
    assert all(name.startswith(".tmp-") for name in strays), strays
