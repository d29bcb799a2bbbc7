"""Benchmark: what the usage log and a key's limits cost a small edit, on SQLite and on
PostgreSQL (with its limits in Redis), measured side by side in one run.

Run: ``.venv/bin/python bench/backbone.py [--seconds S] [--rounds R]``

For each database, two ``retouch serve`` processes on the same machine:

* **off**: ``RETOUCH_USAGE_LOG=false`` and a managed key without limits;
* **on**: the usage log on and a managed key with rpm, images-per-day and a monthly
  budget (high enough never to refuse): every request is counted against the rpm, takes
  and settles images, and reads the month's spend from the usage log.

Clients send tiny ``retouch/basic`` edits (a 64x64 PNG, ``grayscale``, base64 answer) at
concurrency 8 from a separate process, so that the server's own cost dominates. Rounds
alternate between off and on so that machine noise hits both alike; the ratio printed
is the median over rounds of on/off within a round.
Goal: on ≥ 0.9 × off requests/s on both databases. Also printed: the retouch process's
CPU per request on each side, which does not count what PostgreSQL and Redis (on the
same cores here) spend. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.backing starts PostgreSQL and Redis
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import RetouchServer  # noqa: E402

from tests import backing  # noqa: E402

CONCURRENCY = 8
RATIO_GOAL = 0.9
ADMIN_KEY = "bench-admin-key-0123456789"
LIMITS = {"rpm": 10_000_000, "images_per_day": 1_000_000_000, "monthly_budget_usd": 1e9}


def small_png() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 64)).convert("RGB").save(out, "PNG")
    return out.getvalue()


async def _load(url: str, key: str, seconds: float) -> tuple[int, int]:
    """Send edits for ``seconds`` at CONCURRENCY; (answers, errors)."""
    png = small_png()
    deadline = time.perf_counter() + seconds
    counts = [0, 0]
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                 headers={"authorization": f"Bearer {key}"}) as client:
        async def worker() -> None:
            while time.perf_counter() < deadline:
                answer = await client.post("/v1/images/edits", data={"prompt": "grayscale", "response_format": "b64_json"},
                                           files={"image": ("a.png", png, "image/png")})
                counts[answer.status_code != 200] += 1
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return counts[0], counts[1]


def _load_in_child(url: str, key: str, seconds: float, out) -> None:
    out.send(asyncio.run(_load(url, key, seconds)))


def measure(url: str, key: str, server: psutil.Process, seconds: float) -> tuple[float, int, float]:
    """Requests per second over ``seconds`` from a client process, its errors, and the
    server process's CPU milliseconds per request."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=_load_in_child, args=(url, key, seconds, send))
    cpu_before = _cpu(server)
    started = time.perf_counter()
    child.start()
    done, errors = receive.recv()
    elapsed = time.perf_counter() - started
    cpu = _cpu(server) - cpu_before
    child.join()
    return done / elapsed, errors, 1e3 * cpu / max(1, done + errors)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def make_key(url: str, limits: dict) -> str:
    made = httpx.post(f"{url}/admin/keys", json={"name": "bench", **limits},
                      headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    made.raise_for_status()
    return made.json()["key"]


@contextlib.contextmanager
def servers(env: dict[str, str]):
    """(off, on): two servers on the same backing services, each with its key."""
    base = {"RETOUCH_ADMIN_KEY": ADMIN_KEY, **env}
    with RetouchServer(env={**base, "RETOUCH_USAGE_LOG": "false"}) as off, \
            RetouchServer(env={**base, "RETOUCH_USAGE_LOG": "true"}) as on:
        yield ((off.url, make_key(off.url, {}), off.process()),
               (on.url, make_key(on.url, LIMITS), on.process()))


def compare(name: str, env: dict[str, str], seconds: float, rounds: int) -> float:
    with servers(env) as (off, on):
        measure(*off, 1.0), measure(*on, 1.0)  # warm both up
        rates, cpu = {"off": [], "on": []}, {"off": [], "on": []}
        errors = 0
        for _ in range(rounds):
            for label, side in (("off", off), ("on", on)):
                rate, failed, ms = measure(*side, seconds)
                rates[label].append(rate)
                cpu[label].append(ms)
                errors += failed
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    off_cpu, on_cpu = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    # Each round's two sides ran back to back: the median of their ratios cancels the
    # machine's slow drift, which moves a side's rate by ±15 % from round to round here.
    ratio = statistics.median(on / off for on, off in zip(rates["on"], rates["off"]))
    verdict = "PASS" if ratio >= RATIO_GOAL and errors == 0 else "FAIL"
    print(f"{name:<28} off {off_rate:6.1f} req/s  on {on_rate:6.1f} req/s  on/off {ratio:.2f} (median of rounds) "
          f"(goal ≥ {RATIO_GOAL}; {errors} errors) {verdict}\n"
          f"{'':<28} retouch CPU per request: off {off_cpu:.2f} ms, on {on_cpu:.2f} ms "
          f"(+{on_cpu - off_cpu:.2f} ms; off/on {off_cpu / on_cpu:.2f})", flush=True)
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"small retouch/basic edits, concurrency {CONCURRENCY}, median of {args.rounds} rounds "
          f"of {args.seconds:g} s each side")
    compare("SQLite, limits in memory", {}, args.seconds, args.rounds)
    if not (backing.postgres_bin("initdb") and shutil.which("redis-server")):
        print("PostgreSQL + Redis: skipped (apt-get install postgresql redis-server)")
        return 0
    with backing.postgres_server() as pg, backing.redis_server() as redis:
        env = {"RETOUCH_DATABASE_URL": backing.create_database(pg), "RETOUCH_REDIS_URL": redis}
        compare("PostgreSQL, limits in Redis", env, args.seconds, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
