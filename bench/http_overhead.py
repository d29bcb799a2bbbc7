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
import json
import os
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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

from retouch.engine.ops import Context
from retouch.inputs import Slot

SLOT = Slot("image", 0)

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
    gray = Grayscale().apply(pixels, Context([pixels]))
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
        for done in wait(pending, return_when=FIRST_COMPLETED).done:
            pending.discard(done)
            done.result()
    return len(latencies), time.perf_counter() - start, latencies


# -- through the server ----------------------------------------------------------------

def raw_request(url: str, png: bytes) -> bytes:
    """The multipart request, encoded once: the client then only writes bytes, so its own
    CPU (which shares this machine's 2 cores with the server) stays out of the figure."""
    request = httpx.Request("POST", f"{url}/v1/images/edits", data=FIELDS,
                            files={"image": ("photo.png", png, "image/png")})
    body = request.read()
    head = (f"POST /v1/images/edits HTTP/1.1\r\nHost: {request.url.netloc.decode()}\r\n"
            f"Content-Type: {request.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def post_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
                   ) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 exchange: (status, body)."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run_http(url: str, png: bytes, count: int, seconds: float
                   ) -> tuple[int, float, list[float], dict[int | str, int]]:
    """``count`` edits (or as many as fit in ``seconds``) from 4 concurrent connections.
    Each answer is parsed and its image base64-decoded, as a real client would."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    issued = 0
    deadline = time.perf_counter() + seconds
    request = raw_request(url, png)
    host, port = url.removeprefix("http://").split(":")

    async def worker() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                start = time.perf_counter()
                status, body = await post_raw(reader, writer, request)
                code: int | str = status
                if status == 200:
                    image = base64.b64decode(json.loads(body)["data"][0]["b64_json"])
                    code = status if image.startswith(PNG_SIGNATURE) else "bad image"
                latencies.append(time.perf_counter() - start)
                statuses[code] = statuses.get(code, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(latencies), time.perf_counter() - start, latencies, statuses


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def minor_faults(pid: int) -> int:
    """Minor page faults so far (Linux; 0 elsewhere): fresh pages the allocator had to map."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120, help="timed requests per side, in total")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    parser.add_argument("--seconds", type=float, default=40.0,
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
    faults = {"server": 0, "local": 0}
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
            s0, c0, f0 = cpu_seconds(server_proc), cpu_seconds(me), minor_faults(server.pid)
            n, elapsed, lats, codes = asyncio.run(run_http(server.url, png, per_round, round_cap))
            faults["server"] += minor_faults(server.pid) - f0
            cpu["server"] += cpu_seconds(server_proc) - s0
            cpu["client"] += cpu_seconds(me) - c0
            totals["http"][0] += n
            totals["http"][1] += elapsed
            lat["http"] += lats
            for code, k in codes.items():
                statuses[code] = statuses.get(code, 0) + k

            c0, f0 = cpu_seconds(me), minor_faults(me.pid)
            n, elapsed, lats = run_in_process(pool, png, per_round, round_cap)
            faults["local"] += minor_faults(me.pid) - f0
            cpu["local"] += cpu_seconds(me) - c0
            totals["local"][0] += n
            totals["local"][1] += elapsed
            lat["local"] += lats

    http_n, http_s = totals["http"]
    local_n, local_s = totals["local"]
    http_rps, local_rps = http_n / http_s, local_n / local_s
    ratio = http_rps / local_rps
    header = (f"{'side':24} {'requests':>8} {'seconds':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
              f"{'CPU ms/req':>11} {'faults/req':>10}")
    print(header)
    print("-" * len(header))
    server_ms, client_ms = 1e3 * cpu["server"] / http_n, 1e3 * cpu["client"] / http_n
    local_ms = 1e3 * cpu["local"] / local_n
    rows = [
        ("HTTP (server + client)", http_n, http_s, http_rps, lat["http"],
         f"{server_ms:.0f} + {client_ms:.0f}", faults["server"] / http_n),
        ("in-process (4 threads)", local_n, local_s, local_rps, lat["local"],
         f"{local_ms:.0f}", faults["local"] / local_n),
    ]
    for label, n, secs, rps, lats, cpu_text, fault_rate in rows:
        print(f"{label:24} {n:8d} {secs:8.2f} {rps:7.2f} {1e3 * statistics.median(lats):7.0f} "
              f"{1e3 * _p95(lats):7.0f} {cpu_text:>11} {fault_rate:10.0f}")
    print("CPU ms/req: HTTP is server + client process; faults/req: minor page faults of the "
          "server / of this process")
    print(f"HTTP status counts: {dict(sorted(statuses.items(), key=str))}")
    print(f"info: server CPU alone vs in-process CPU per request: {local_ms / server_ms:.2f}x; "
          f"with the client: {local_ms / (server_ms + client_ms):.2f}x (2 busy cores make "
          "req/s follow CPU per request)")
    ok = ratio >= RATIO_GOAL and set(statuses) == {200}
    print(f"ratio HTTP / in-process: {ratio:.2f}x (goal >= {RATIO_GOAL:.2f}x): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())
