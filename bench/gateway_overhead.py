"""Benchmark: an edit through retouch to an OpenAI-compatible upstream against calling
that upstream directly.

Run: ``.venv/bin/python bench/gateway_overhead.py [--latency-requests N] [--throughput-requests N]
[--burst N] [--delay S] [--image photo|flat] [--burst-image photo|flat]``

The upstream is ``bench/_fake_upstream.py`` (its own process): it answers at once (or after
``--delay`` seconds) with a fixed 1024x1024 PNG as ``b64_json``. retouch (``retouch serve``,
its own process; ``--workers N`` for more) declares it in a models file as ``openai_compatible`` models
``bench/upstream`` and ``bench/upstream-slow``. Every request is the same JSON edit,
``{model, prompt, image_urls: [a 64x64 data-URL PNG], response_format: "b64_json"}``, sent
to retouch or straight to the fake. Before timing, one answer each way is decoded and
compared with the fixed PNG; timed answers are only checked for status 200 and a PNG in
``b64_json`` (no decode), so that the client - sharing this machine's cores with both
servers - stays out of the figures as far as it can.

Goals:
1. concurrency 1: p50 latency added by retouch <= 10 ms (p99 printed too); blocks of
   requests alternate between the two sides so that machine noise hits both alike;
2. concurrency 16: retouch req/s >= 0.7x direct req/s (alternating rounds);
3. upstream answering after 2 s: 500 concurrent requests through retouch complete in
   <= 3 s wall time, peak RSS of the retouch server <= 400 MB (sampled every 20 ms), and
   no errors. The same burst sent directly is printed: it is this machine's floor.

Goals 1 and 2 use httpx.AsyncClient and a photo-like PNG (~1.4 MB, 1.9 MB as base64: the
size of a real model's 1024x1024 answer). Goal 3 uses, by default, a flat 1024x1024 PNG
(~5 KB): it is about waiting on a slow upstream, and 500 photo-sized answers are 1 GB of
base64, which takes this 2-core machine about 0.9 s to move even without retouch
(``--burst-image photo`` runs it so). Its client is a lean asyncio one, one connection per
request: one httpx.AsyncClient with 500 connections takes 10-20 s for the direct burst
alone (its pool does O(connections) work per request; encode/httpx#3215), and even split
into clients of 20 connections its own CPU leaves no room under 3 s.
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fake_upstream import FakeUpstream
from _server import RetouchServer, process_tree_rss
from encoding import smooth_image

SIZE = 1024
INPUT_SIZE = 64
FAST, SLOW = "bench/upstream", "bench/upstream-slow"
LATENCY_GOAL_MS = 10.0
RATIO_GOAL = 0.7
BURST_WALL_GOAL_S = 3.0
BURST_RSS_GOAL_MB = 400.0
RSS_INTERVAL_S = 0.02
CONCURRENCY = 16
# "b64_json": "<a PNG>", with or without spaces (retouch writes compact JSON, the fake does not)
PNG_B64 = re.compile(rb'"b64_json":\s*"' + base64.b64encode(b"\x89PNG\r\n\x1a\n")[:8])


def png_of(pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def answer_png(kind: str) -> bytes:
    """The upstream's fixed answer: ``photo`` (smooth, photo-like) or ``flat`` (one colour)."""
    if kind == "photo":
        return png_of(smooth_image(SIZE))
    out = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), (90, 120, 200)).save(out, "PNG")
    return out.getvalue()


def models_yaml(fast: FakeUpstream, slow: FakeUpstream) -> str:
    entry = "  - {{id: {id}, provider: openai_compatible, api_base: {base}, model: fake, timeout: 30}}\n"
    return ("models:\n" + entry.format(id=FAST, base=fast.api_base)
            + entry.format(id=SLOW, base=slow.api_base))


class Side:
    """One way of sending the edit: its URL, its JSON body (encoded once) and a client."""

    def __init__(self, name: str, url: str, model: str, input_url: str, connections: int) -> None:
        self.name = name
        self.url = url + "/v1/images/edits"
        self.body = json.dumps({"model": model, "prompt": "x", "image_urls": [input_url],
                                "response_format": "b64_json"}).encode()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"content-type": "application/json"})

    async def post(self) -> tuple[int | str, bytes]:
        try:
            response = await self.client.post(self.url, content=self.body)
        except httpx.HTTPError as exc:
            return type(exc).__name__, b""
        return response.status_code, response.content

    async def timed(self) -> tuple[float, int | str]:
        """One request: (seconds, status or what went wrong); the answer is checked cheaply."""
        start = time.perf_counter()
        status, body = await self.post()
        elapsed = time.perf_counter() - start
        if status == 200 and not PNG_B64.search(body, 0, 4096):
            status = "no PNG"
        return elapsed, status

    async def verify(self, png: bytes) -> int | str:
        """One request whose image is decoded and compared with the upstream's PNG."""
        status, body = await self.post()
        if status != 200:
            return f"{status} {body[:300]!r}"
        image = base64.b64decode(json.loads(body)["data"][0]["b64_json"])
        return 200 if image == png else f"different image ({len(image):,} B)"

    async def aclose(self) -> None:
        await self.client.aclose()


def count(statuses: dict, code) -> None:
    statuses[code] = statuses.get(code, 0) + 1


async def run_concurrent(side: Side, n: int, concurrency: int, seconds: float
                         ) -> tuple[int, float, list[float], dict]:
    """``n`` requests (or as many as fit in ``seconds``) from ``concurrency`` tasks."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < n and time.perf_counter() < deadline:
            issued += 1
            elapsed, code = await side.timed()
            latencies.append(elapsed)
            count(statuses, code)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), time.perf_counter() - start, latencies, statuses


class RssSampler:
    """Peak RSS of a process tree, sampled every ``interval`` seconds in a thread."""

    def __init__(self, proc: psutil.Process, interval: float = RSS_INTERVAL_S) -> None:
        self.proc = proc
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, process_tree_rss(self.proc))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, process_tree_rss(self.proc))


class OneExchange(asyncio.Protocol):
    """One HTTP/1.1 request on its own connection; reads the whole answer but keeps only
    its head (status line, headers, the first bytes of the body)."""

    KEEP = 4096

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request, self.done = request, done
        self.head = bytearray()
        self.body_start = -1
        self.total = -1  # bytes the whole answer takes, once its headers are in
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.total < 0 or len(self.head) < self.body_start + self.KEEP:
            self.head += data
        if self.total < 0:
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.head[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.body_start, self.total = end + 4, end + 4 + length
        del self.head[self.body_start + self.KEEP:]
        if self.received >= self.total and not self.done.done():
            self.done.set_result((bytes(self.head[:self.body_start]),
                                  bytes(self.head[self.body_start:])))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before the whole answer"))


class RawSide:
    """The same JSON edit as ``Side``, for bursts: one new connection per request."""

    def __init__(self, url: str, model: str, input_url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        body = json.dumps({"model": model, "prompt": "x", "image_urls": [input_url],
                           "response_format": "b64_json"}).encode()
        self.request = (f"POST /v1/images/edits HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n").encode() + body

    async def timed(self, timeout: float = 60.0) -> tuple[float, int | str]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        done = loop.create_future()
        transport = None
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: OneExchange(self.request, done), self.host, self.port)
                head, body = await done
            status: int | str = int(head.split(b" ", 2)[1])
            if status == 200 and not PNG_B64.search(body):
                status = "no PNG"
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            status = type(exc).__name__
        finally:
            if transport is not None:
                transport.close()
        return time.perf_counter() - start, status


async def burst(side: RawSide, n: int) -> tuple[float, dict, list[float]]:
    """``n`` requests at once: wall seconds, status counts, latencies."""
    start = time.perf_counter()
    results = await asyncio.gather(*(side.timed() for _ in range(n)))
    wall = time.perf_counter() - start
    statuses: dict[int | str, int] = {}
    for _, code in results:
        count(statuses, code)
    return wall, statuses, [elapsed for elapsed, _ in results]


def cpu_seconds(proc: psutil.Process, *, with_children: bool = False) -> float:
    """CPU seconds of ``proc`` (and of its children: ``--workers`` processes)."""
    total = 0.0
    for each in [proc, *(proc.children(recursive=True) if with_children else [])]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def merge(into: dict, more: dict) -> None:
    for code, k in more.items():
        into[code] = into.get(code, 0) + k


def fmt_statuses(statuses: dict) -> str:
    return str(dict(sorted(statuses.items(), key=str)))


async def measure(args, server: RetouchServer, fast: FakeUpstream, slow: FakeUpstream,
                  png: bytes, input_url: str) -> bool:
    server_proc, me = server.process(), psutil.Process()
    connections = CONCURRENCY + 4
    sides = {
        "retouch": Side("retouch", server.url, FAST, input_url, connections),
        "direct": Side("direct", fast.url, "fake", input_url, connections),
    }
    slow_sides = {"retouch": RawSide(server.url, SLOW, input_url),
                  "direct": RawSide(slow.url, "fake", input_url)}
    all_ok = True
    try:
        for name, side in sides.items():
            verdict = await side.verify(png)
            print(f"check: {name} answer decodes to the upstream's PNG: "
                  f"{'yes' if verdict == 200 else verdict}")
            all_ok &= verdict == 200
            await run_concurrent(side, args.warmup, CONCURRENCY, 30)  # warm pools and caches

        # -- 1. latency at concurrency 1, alternating blocks ------------------------------
        blocks = max(1, args.latency_requests // args.block)
        lat: dict[str, list[float]] = {"retouch": [], "direct": []}
        statuses1: dict[str, dict] = {"retouch": {}, "direct": {}}
        cap = args.seconds / blocks
        for _ in range(blocks):
            for name, side in sides.items():
                _, _, lats, codes = await run_concurrent(side, args.block, 1, cap)
                lat[name] += lats
                merge(statuses1[name], codes)

        # -- 2. throughput at concurrency 16, alternating rounds ---------------------------
        per_round = max(1, args.throughput_requests // args.rounds)
        totals = {"retouch": [0, 0.0], "direct": [0, 0.0]}
        lat16: dict[str, list[float]] = {"retouch": [], "direct": []}
        statuses16: dict[str, dict] = {"retouch": {}, "direct": {}}
        cpu = {"server": 0.0, "client_retouch": 0.0, "client_direct": 0.0}
        cap = args.seconds / args.rounds
        for _ in range(args.rounds):
            for name, side in sides.items():
                s0, c0 = cpu_seconds(server_proc, with_children=True), cpu_seconds(me)
                n, elapsed, lats, codes = await run_concurrent(side, per_round, CONCURRENCY, cap)
                if name == "retouch":
                    cpu["server"] += cpu_seconds(server_proc, with_children=True) - s0
                cpu[f"client_{name}"] += cpu_seconds(me) - c0
                totals[name][0] += n
                totals[name][1] += elapsed
                lat16[name] += lats
                merge(statuses16[name], codes)

        # -- 3. a burst against a slow upstream ---------------------------------------------
        for side in slow_sides.values():  # retouch opens its upstream connections first
            await burst(side, min(args.burst, 32))
        idle_rss = process_tree_rss(server_proc)
        with RssSampler(server_proc) as sampler:
            s0 = cpu_seconds(server_proc, with_children=True)
            wall, statuses3, lats3 = await burst(slow_sides["retouch"], args.burst)
            burst_cpu = cpu_seconds(server_proc, with_children=True) - s0
        direct_wall, direct_statuses3, direct_lats3 = await burst(slow_sides["direct"], args.burst)
    finally:
        for side in sides.values():
            await side.aclose()

    # -- report ---------------------------------------------------------------------------
    print()
    print(f"1. concurrency 1, {blocks} alternating blocks of {args.block} requests per side")
    header = f"{'side':10} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for name in ("retouch", "direct"):
        v = lat[name]
        print(f"{name:10} {len(v):8d} {1e3 * statistics.median(v):8.1f} {1e3 * pct(v, 0.90):8.1f} "
              f"{1e3 * pct(v, 0.99):8.1f} {1e3 * max(v):8.1f}")
    p50_added = 1e3 * (statistics.median(lat["retouch"]) - statistics.median(lat["direct"]))
    p99_added = 1e3 * (pct(lat["retouch"], 0.99) - pct(lat["direct"], 0.99))
    print(f"status counts: retouch {fmt_statuses(statuses1['retouch'])}, "
          f"direct {fmt_statuses(statuses1['direct'])}")
    ok1 = p50_added <= LATENCY_GOAL_MS and set(statuses1["retouch"]) == {200}
    print(f"added by retouch: p50 {p50_added:+.1f} ms, p99 {p99_added:+.1f} ms "
          f"(goal p50 <= {LATENCY_GOAL_MS:.0f} ms): {'PASS' if ok1 else 'FAIL'}")

    print()
    print(f"2. concurrency {CONCURRENCY}, {args.rounds} alternating rounds of {per_round} "
          "requests per side")
    header = (f"{'side':10} {'requests':>8} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'CPU ms/req':>16}")
    print(header)
    print("-" * len(header))
    rps = {}
    for name in ("retouch", "direct"):
        n, secs = totals[name]
        rps[name] = n / secs
        client_ms = 1e3 * cpu[f"client_{name}"] / n
        cpu_text = (f"{1e3 * cpu['server'] / n:.1f} + {client_ms:.1f}" if name == "retouch"
                    else f"{client_ms:.1f}")
        print(f"{name:10} {n:8d} {secs:8.2f} {rps[name]:8.1f} {1e3 * statistics.median(lat16[name]):8.1f} "
              f"{1e3 * pct(lat16[name], 0.99):8.1f} {cpu_text:>16}")
    print("CPU ms/req: retouch server + this client (retouch); this client alone (direct); "
          "the fake upstream's own CPU is not counted")
    print(f"status counts: retouch {fmt_statuses(statuses16['retouch'])}, "
          f"direct {fmt_statuses(statuses16['direct'])}")
    ratio = rps["retouch"] / rps["direct"]
    ok2 = ratio >= RATIO_GOAL and set(statuses16["retouch"]) == {200}
    print(f"ratio retouch / direct: {ratio:.2f}x (goal >= {RATIO_GOAL:.2f}x): "
          f"{'PASS' if ok2 else 'FAIL'}")

    print()
    print(f"3. {args.burst} concurrent requests (one connection each), upstream answering after "
          f"{args.delay:g} s with the {args.burst_image} PNG")
    header = f"{'side':10} {'wall s':>8} {'p50 s':>8} {'max s':>8}  status counts"
    print(header)
    print("-" * len(header))
    print(f"{'retouch':10} {wall:8.2f} {statistics.median(lats3):8.2f} {max(lats3):8.2f}  "
          f"{fmt_statuses(statuses3)}")
    print(f"{'direct':10} {direct_wall:8.2f} {statistics.median(direct_lats3):8.2f} "
          f"{max(direct_lats3):8.2f}  {fmt_statuses(direct_statuses3)}")
    peak_mb = sampler.peak / 2**20
    print(f"retouch server RSS: {idle_rss / 2**20:.0f} MB before, peak {peak_mb:.0f} MB "
          f"({sampler.samples} samples, every {1e3 * RSS_INTERVAL_S:.0f} ms); "
          f"server CPU {burst_cpu:.2f} s ({1e3 * burst_cpu / args.burst:.1f} ms/req)")
    ok3_wall = wall <= BURST_WALL_GOAL_S
    ok3_rss = peak_mb <= BURST_RSS_GOAL_MB
    ok3_err = set(statuses3) == {200}
    print(f"wall {wall:.2f} s (goal <= {BURST_WALL_GOAL_S:.0f} s): {'PASS' if ok3_wall else 'FAIL'}")
    print(f"peak RSS {peak_mb:.0f} MB (goal <= {BURST_RSS_GOAL_MB:.0f} MB): "
          f"{'PASS' if ok3_rss else 'FAIL'}")
    print(f"errors {sum(k for c, k in statuses3.items() if c != 200)} (goal 0): "
          f"{'PASS' if ok3_err else 'FAIL'}")
    return all_ok and ok1 and ok2 and ok3_wall and ok3_rss and ok3_err


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-requests", type=int, default=200,
                        help="concurrency-1 requests per side, in total")
    parser.add_argument("--block", type=int, default=20, help="requests per alternating block")
    parser.add_argument("--throughput-requests", type=int, default=400,
                        help="concurrency-16 requests per side, in total")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--burst", type=int, default=500, help="concurrent requests in the burst")
    parser.add_argument("--delay", type=float, default=2.0, help="the slow upstream's delay, s")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="time cap per side for each of goals 1 and 2 (each block or round "
                             "gets its share)")
    parser.add_argument("--image", choices=("photo", "flat"), default="photo",
                        help="the upstream's answer for goals 1 and 2")
    parser.add_argument("--burst-image", choices=("photo", "flat"), default="flat",
                        help="the slow upstream's answer for goal 3")
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests per side first")
    parser.add_argument("--workers", type=int, default=1,
                        help="retouch serve --workers (processes; default 1)")
    args = parser.parse_args()

    png = answer_png(args.image)
    burst_png = answer_png(args.burst_image)
    small = png_of(smooth_image(INPUT_SIZE))
    input_url = "data:image/png;base64," + base64.b64encode(small).decode("ascii")
    tmp = Path(tempfile.mkdtemp(prefix="retouch-gateway-bench-"))
    try:
        png_path, burst_path = tmp / "answer.png", tmp / "burst.png"
        png_path.write_bytes(png)
        burst_path.write_bytes(burst_png)
        for goal, kind, data in (("1-2", args.image, png), ("3", args.burst_image, burst_png)):
            print(f"upstream answer, goal{'s' if '-' in goal else ''} {goal}: {SIZE}x{SIZE} {kind} "
                  f"PNG ({len(data):,} B, {4 * ((len(data) + 2) // 3):,} B as base64)")
        print(f"request: JSON edit with a {INPUT_SIZE}x{INPUT_SIZE} PNG data URL ({len(small):,} B)")
        print(f"retouch serve --workers {args.workers}")
        print(f"machine: {os.cpu_count()} cores, shared by retouch, the fake upstreams and this "
              "client; each server in its own process")
        with FakeUpstream(png_path) as fast, FakeUpstream(burst_path, delay=args.delay) as slow:
            models = tmp / "models.yaml"
            models.write_text(models_yaml(fast, slow), encoding="utf-8")
            with RetouchServer(env={"RETOUCH_MODELS_FILE": str(models)},
                               serve_args=["--workers", str(args.workers)]) as server:
                ok = asyncio.run(measure(args, server, fast, slow, png, input_url))
                # the server's own warnings and errors, without its access log
                notes = [line for line in server.log_tail(5000).splitlines()
                         if line.strip() and " INFO " not in line and not line.startswith("INFO:")]
                if notes:
                    print("\nretouch log, besides INFO lines (last 10):\n" + "\n".join(notes[-10:]))
        print(f"\nall goals: {'PASS' if ok else 'FAIL'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
