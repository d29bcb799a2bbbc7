"""Benchmark: retouch's encoder against Pillow's default save, side by side.

Run: ``.venv/bin/python bench/encoding.py [--repeat N]``

Goal (PNG, 1024x1024 RGB, both a smooth photo-like and a noisy image):
at least 3x faster than ``Image.save(buf, "PNG")`` with files at most 1.30x as
large. JPEG and WebP rows are printed for information only (no goal).
Timings are medians; calls alternate between the two encoders so that machine
noise hits both alike. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

try:
    from retouch.engine.codecs import encode
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from retouch.engine.codecs import encode

SIZE = 1024
SPEED_GOAL = 3.0
SIZE_GOAL = 1.30


def smooth_image(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Photo-like RGB: gradients + low-frequency sinusoids + gaussian noise (sigma 2)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    waves = [(3.0, 2.0, 0.5), (1.5, 4.0, 1.0), (2.5, 1.0, 2.0)]
    ramps = [60 + 120 * (0.6 * x + 0.4 * y), 40 + 150 * y, 60 + 120 * (0.3 * x + 0.7 * y)]
    channels = [
        ramp
        + 40 * np.sin(2 * np.pi * fx * x + phase) * np.cos(2 * np.pi * fy * y)
        + 25 * np.sin(2 * np.pi * 1.7 * (fx + fy) * (x + y))
        for ramp, (fx, fy, phase) in zip(ramps, waves)
    ]
    image = np.stack(channels, axis=-1) + rng.normal(0.0, 2.0, (size, size, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def noisy_image(size: int = SIZE, seed: int = 1) -> np.ndarray:
    """Uniform random RGB: incompressible, the worst case for deflate."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def pillow_save(pixels: np.ndarray, fmt: str, **options) -> bytes:
    """Pillow's save (default options unless given), the baseline."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def race(baseline, candidate, repeat: int) -> tuple[float, float, int, int]:
    """Median ms of both callables (interleaved, after one warm-up) and their output sizes."""
    size_a, size_b = len(baseline()), len(candidate())
    times_a, times_b = [], []
    for _ in range(repeat):
        for fn, times in ((baseline, times_a), (candidate, times_b)):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times_a), statistics.median(times_b), size_a, size_b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per encoder")
    args = parser.parse_args()

    images = {"smooth": smooth_image(), "noisy": noisy_image()}
    # (label, retouch format, Pillow format, Pillow options, has the goal)
    rows = [
        ("png", "png", "PNG", {}, True),
        ("jpeg", "jpeg", "JPEG", {}, False),
        ("jpeg=q", "jpeg", "JPEG", {"quality": 90}, False),
        ("webp", "webp", "WEBP", {}, False),
        ("webp=q", "webp", "WEBP", {"quality": 90}, False),
    ]
    header = (
        f"{'format':7} {'image':7} {'pillow ms':>10} {'retouch ms':>11} {'speed':>7} "
        f"{'pillow B':>10} {'retouch B':>10} {'size':>6}  verdict"
    )
    print(f"{SIZE}x{SIZE} RGB, median of {args.repeat}; goal (png): speed >= "
          f"{SPEED_GOAL:.1f}x, size <= {SIZE_GOAL:.2f}x of Pillow default")
    print(header)
    print("-" * len(header))
    all_pass = True
    for label, fmt, pil_fmt, pil_options, has_goal in rows:
        for name, pixels in images.items():
            pil_ms, ours_ms, pil_b, ours_b = race(
                lambda: pillow_save(pixels, pil_fmt, **pil_options),
                lambda: encode(pixels, fmt),
                args.repeat,
            )
            speed, size = pil_ms / ours_ms, ours_b / pil_b
            if has_goal:
                ok = speed >= SPEED_GOAL and size <= SIZE_GOAL
                all_pass &= ok
                verdict = "PASS" if ok else "FAIL"
            else:
                verdict = "info"
            print(f"{label:7} {name:7} {pil_ms:10.1f} {ours_ms:11.1f} {speed:6.2f}x "
                  f"{pil_b:10d} {ours_b:10d} {size:5.2f}x  {verdict}")
    print("info rows: Pillow defaults are JPEG q75 and WebP q80 (method 4), retouch uses q90 "
          "(WebP method 0);\n  '=q' rows give Pillow the same quality 90 (WebP still method 4).")
    print("PNG goal:", "PASS" if all_pass else "FAIL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
