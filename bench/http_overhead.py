"""Benchmark: a grayscale edit through the real HTTP server against the same work in-process.

Run: ``.venv/bin/python bench/http_overhead.py [--count N] [--rounds R] [--seconds S]``

Both sides handle the same 1024x1024 photo-like PNG at concurrency 4:

* server: ``retouch serve`` in a subprocess; 4 httpx.AsyncClient tasks each POST the PNG
  as a multipart ``image`` with ``prompt=grayscale`` and ``response_format=b64_json``, then
  parse the JSON and base64-decode the image, as a real client does;
* in-process: a pool of 4 threads each running what the server runs per request:
  ``inspect_header`` -> ``InputImage.pixels()`` -> ``Grayscale().apply`` ->
  ``encode(..., "png")`` -> base64.

Goal: server req/s >= 0.8x in-process req/s, i.e. HTTP (multipart parsing, the event
loop, JSON, the client's own work) costs at most 20%. Rounds alternate between the two
sides so that machine noise hits both alike. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from PIL import Image

try:
    import retouch  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retouch.engine.codecs import encode
from retouch.engine.ops.color import Grayscale
from retouch.inputs import InputImage, InputLimits, inspect_header

try:  # inputs are labelled by a Slot(param, index) in newer versions, a "param[i]" string before
    from retouch.inputs import Slot
    SLOT = Slot("image", 0)
except ImportError:
    SLOT = "image[0]"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import RetouchServer  # noqa: E402
from encoding import smooth_image  # noqa: E402

SIZE = 1024
CONCURRENCY = 4
RATIO_GOAL = 0.8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIELDS = {"prompt": "grayscale", "response_format": "b64_json"}


def input_png() -> bytes:
    """The photo-like test image as a client would send it (Pillow's default PNG save)."""
    out = io.BytesIO()
    Image.fromarray(smooth_image(SIZE)).save(out, "PNG")
    return out.getvalue()


# -- in-process: what the server does per request, without HTTP -----------------------

def edit_in_process(png: bytes) -> bytes:
    """Header check, decode, grayscale, PNG encode, base64: the service's per-request work."""
    file = io.BytesIO(png)  # the server holds the upload as a (spooled) file
    limits = InputLimits()
    fmt, size = inspect_header(file, SLOT, limits)
    pixels = InputImage(file, fmt, size, SLOT).pixels()
    gray = Grayscale().apply(pixels, [pixels])
    data = encode(gray, "png")
    return base64.b64encode(data)


def run_in_process(pool: ThreadPoolExecutor, png: bytes, count: int, seconds: float
                   ) -> tuple[int, float, list[float]]:
    """``count`` edits (or as many as fit in ``seconds``) at concurrency 4: done, elapsed, latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def one() -> None:
        start = time.perf_counter()
        out = edit_in_process(png)
        latencies.append(time.perf_counter() - start)
        if not out:
            raise RuntimeError("empty output")

    start = time.perf_counter()
    issued = 0
    pending = set()
    # keep exactly CONCURRENCY jobs in flight, like the HTTP side's CONCURRENCY clients
    while issued < count or pending:
        while issued < count and len(pending) < CONCURRENCY and time.perf_counter() < deadline:
            pending.add(pool.submit(one))
            issued += 1
        if not pending:
            break
        done = next(iter(_wait_first(pending)))
        pending.discard(done)
        done.result()
    return len(latencies), time.perf_counter() - start, latencies


def _wait_first(futures):
    from concurrent.futures import FIRST_COMPLETED, wait
    return wait(futures, return_when=FIRST_COMPLETED).done


# -- through the server ----------------------------------------------------------------

async def run_http(url: str, png: bytes, count: int, seconds: float
                   ) -> tuple[int, float, list[float], dict[int | str, int]]:
    """``count`` edits (or as many as fit in ``seconds``) from 4 concurrent clients."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            response = await client.post(
                "/v1/images/edits", data=FIELDS,
                files={"image": ("photo.png", png, "image/png")})
            status: int | str = response.status_code
            if status == 200:
                body = response.json()
                image = base64.b64decode(body["data"][0]["b64_json"])
                if not image.startswith(PNG_SIGNATURE):
                    status = "bad image"
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return len(latencies), elapsed, latencies, statuses


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="timed requests per side, in total")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="time cap per side, in total (each round gets its share)")
    parser.add_argument("--warmup", type=int, default=8, help="untimed requests per side first")
    args = parser.parse_args()

    png = input_png()
    per_round = max(1, args.count // args.rounds)
    round_cap = args.seconds / args.rounds
    me = psutil.Process()
    totals = {"http": [0, 0.0], "local": [0, 0.0]}
    lat = {"http": [], "local": []}
    cpu = {"server": 0.0, "client": 0.0, "local": 0.0}
    statuses: dict[int | str, int] = {}

    print(f"{SIZE}x{SIZE} photo-like RGB PNG ({len(png):,} B) -> grayscale PNG, b64_json; "
          f"concurrency {CONCURRENCY}; {args.rounds} alternating rounds of {per_round} "
          f"requests per side (capped at {round_cap:.1f} s a round)")
    print(f"machine: {os.cpu_count()} cores, shared by the server, the HTTP client and the "
          "in-process pool (the client's own work - JSON and base64 - counts against HTTP)")

    with RetouchServer() as server, ThreadPoolExecutor(CONCURRENCY) as pool:
        server_proc = server.process()
        asyncio.run(run_http(server.url, png, args.warmup, 60))
        run_in_process(pool, png, args.warmup, 60)
        for _ in range(args.rounds):
            s0, c0 = cpu_seconds(server_proc), cpu_seconds(me)
            n, elapsed, lats, codes = asyncio.run(run_http(server.url, png, per_round, round_cap))
            cpu["server"] += cpu_seconds(server_proc) - s0
            cpu["client"] += cpu_seconds(me) - c0
            totals["http"][0] += n
            totals["http"][1] += elapsed
            lat["http"] += lats
            for code, k in codes.items():
                statuses[code] = statuses.get(code, 0) + k

            c0 = cpu_seconds(me)
            n, elapsed, lats = run_in_process(pool, png, per_round, round_cap)
            cpu["local"] += cpu_seconds(me) - c0
            totals["local"][0] += n
            totals["local"][1] += elapsed
            lat["local"] += lats

    http_n, http_s = totals["http"]
    local_n, local_s = totals["local"]
    http_rps, local_rps = http_n / http_s, local_n / local_s
    ratio = http_rps / local_rps
    header = f"{'side':28} {'requests':>8} {'seconds':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms/req':>11}"
    print(header)
    print("-" * len(header))
    rows = [
        ("HTTP (server + client)", http_n, http_s, http_rps, lat["http"],
         f"{1e3 * cpu['server'] / http_n:5.0f}+{1e3 * cpu['client'] / http_n:<5.0f}"),
        ("in-process (4 threads)", local_n, local_s, local_rps, lat["local"],
         f"{1e3 * cpu['local'] / local_n:11.0f}"),
    ]
    for label, n, secs, rps, lats, cpu_text in rows:
        print(f"{label:28} {n:8d} {secs:8.2f} {rps:7.2f} {1e3 * statistics.median(lats):7.0f} "
              f"{1e3 * _p95(lats):7.0f} {cpu_text:>11}")
    print("(HTTP CPU ms/req is server+client)")
    print(f"HTTP status counts: {dict(sorted(statuses.items(), key=str))}")
    ok = ratio >= RATIO_GOAL and set(statuses) == {200}
    print(f"ratio HTTP / in-process: {ratio:.2f}x (goal >= {RATIO_GOAL:.2f}x): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())
