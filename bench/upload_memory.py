"""Benchmark: the server's memory under 16 concurrent ~20 MB uploads, and after.

Run: ``.venv/bin/python bench/upload_memory.py [--uploads N] [--side PX]``

One RGB noise image is made (incompressible, so its PNG is ~20 MB at 2600x2600) and
written to a temporary file once; 16 httpx.AsyncClient tasks each stream it from disk
as a multipart ``image`` with ``prompt=grayscale`` (default ``url`` delivery) to a real
``retouch serve`` subprocess. The server's RSS (its children included) is sampled every
~20 ms from idle, through the uploads, to up to ~5 s after the last answer.

Goals: peak RSS < 1.5 GB, and the settled RSS within 200 MB of idle (memory is given
back once the burst is over). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

try:
    import retouch  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retouch.engine.codecs import encode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import RetouchServer  # noqa: E402

MB = 1024 * 1024
GB = 1024 * MB
PEAK_GOAL = 1.5 * GB
SETTLE_GOAL = 200 * MB
SAMPLE_EVERY = 0.020
SETTLE_WAIT = 8.0
FIELDS = {"prompt": "grayscale"}


def noise_png(side: int, seed: int = 2) -> bytes:
    """Uniform RGB noise as PNG: incompressible, so the file is about side*side*3 bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return encode(pixels, "png")


class RssSampler(threading.Thread):
    """Samples ``server.rss()`` every SAMPLE_EVERY seconds until stopped."""

    def __init__(self, server: RetouchServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.perf_counter(), self.server.rss()))
            except Exception:  # the server went away: nothing more to sample
                return
            self._stop_event.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(2)

    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else self.server.rss()

    def peak(self, since: float = 0.0) -> tuple[float, int]:
        window = [s for s in self.samples if s[0] >= since]
        return max(window, key=lambda s: s[1]) if window else (since, 0)


async def upload_all(url: str, path: Path, uploads: int, timeout: float
                     ) -> tuple[dict[int | str, int], list[float], float]:
    """``uploads`` concurrent edits, each streaming the file from disk; statuses, latencies."""
    statuses: dict[int | str, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=uploads, max_keepalive_connections=uploads)

    async def one(client: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        try:
            with open(path, "rb") as handle:  # httpx reads it in chunks while sending
                response = await client.post("/v1/images/edits", data=FIELDS,
                                             files={"image": (path.name, handle, "image/png")})
            status: int | str = response.status_code
            if status == 200 and not response.json()["data"][0].get("url"):
                status = "200 without url"
            elif status != 200:
                status = f"{status} {response.text[:120]}"
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        latencies.append(time.perf_counter() - start)
        statuses[status] = statuses.get(status, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(uploads)))
        return statuses, latencies, time.perf_counter() - start


def warm_up(url: str) -> int:
    """One small edit, so that lazily imported code shows apart from what the burst keeps."""
    small = noise_png(256)
    response = httpx.post(url + "/v1/images/edits", data=FIELDS, timeout=60,
                          files={"image": ("small.png", small, "image/png")})
    return response.status_code


def settle(sampler: RssSampler, seconds: float) -> tuple[int, float]:
    """Wait until the RSS has not moved by more than 1 MB for 2 s (at most ``seconds``):
    the server hands freed heap back after 1 s without requests."""
    start = time.perf_counter()
    steady_since, last = start, sampler.latest()
    while time.perf_counter() - start < seconds:
        time.sleep(0.1)
        now = sampler.latest()
        if abs(now - last) > MB:
            steady_since, last = time.perf_counter(), now
        elif time.perf_counter() - steady_since >= 2.0:
            break
    return sampler.latest(), time.perf_counter() - start


def fmt_mb(n: float) -> str:
    return f"{n / MB:8.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=16, help="concurrent uploads")
    parser.add_argument("--side", type=int, default=2600, help="noise image side, pixels")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="retouch-upload-") as tmp:
        path = Path(tmp) / "noise.png"
        path.write_bytes(noise_png(args.side))
        size = path.stat().st_size
        print(f"{args.uploads} concurrent multipart uploads of one {args.side}x{args.side} RGB "
              f"noise PNG ({size:,} B = {size / MB:.1f} MB), prompt 'grayscale', url delivery")
        print(f"server RSS includes its children; sampled every {SAMPLE_EVERY * 1e3:.0f} ms; "
              f"machine: {os.cpu_count()} cores, client on the same machine")

        with RetouchServer() as server:
            sampler = RssSampler(server)
            sampler.start()
            try:
                time.sleep(0.5)
                idle = sampler.latest()
                warm = warm_up(server.url)
                time.sleep(0.5)
                idle_warm = sampler.latest()
                t0 = time.perf_counter()
                statuses, latencies, elapsed = asyncio.run(
                    upload_all(server.url, path, args.uploads, args.timeout))
                peak_at, peak = sampler.peak(since=t0)
                settled, waited = settle(sampler, SETTLE_WAIT)
                peak = max(peak, sampler.peak(since=t0)[1])
            finally:
                sampler.stop()
            threads = server.process().num_threads()
            files_dir_tmp = tempfile.gettempdir()

    ok_peak = peak < PEAK_GOAL
    ok_settle = settled - idle <= SETTLE_GOAL
    ok_status = set(statuses) == {200}
    print(f"uploads done in {elapsed:.1f} s (slowest {max(latencies):.1f} s, fastest "
          f"{min(latencies):.1f} s); status counts: {dict(sorted(statuses.items(), key=str))}")
    print(f"idle RSS          {fmt_mb(idle)}   (after one small warm-up edit [{warm}]: "
          f"{idle_warm / MB:.1f} MB; the goals use the first figure)")
    print(f"peak RSS          {fmt_mb(peak)}   (at +{peak_at - t0:.1f} s)   goal < {PEAK_GOAL / GB:.1f} GB: "
          f"{'PASS' if ok_peak else 'FAIL'}")
    print(f"settled RSS       {fmt_mb(settled)}   (after {waited:.1f} s; {threads} server threads)")
    print(f"peak - idle       {fmt_mb(peak - idle)}")
    print(f"settled - idle    {fmt_mb(settled - idle)}   goal <= {SETTLE_GOAL / MB:.0f} MB: "
          f"{'PASS' if ok_settle else 'FAIL'}")
    print(f"(multipart parts over 1 MB are spooled to files under {files_dir_tmp}; those are "
          "not in RSS unless it is a tmpfs, where they count as shared memory instead)")
    print("upload memory goals:", "PASS" if ok_peak and ok_settle and ok_status else "FAIL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
