"""Benchmark: every engine operation against the most direct Pillow/OpenCV call, side by side.

Run: ``.venv/bin/python bench/engine_ops.py [--sizes 1024 4096] [--repeat N] [--only NAME]``

Cases come from ``bench/opcases/*.py`` (``CASES = [(name, ours, direct), ...]``, both
callables taking ``(image, reference)``). Each pair is timed alternately in one run
(median of N); the goal is ours ≤ 1.3× direct. A second part measures peak memory of a
5-step chain on a 16 MP image in a fresh process, against the decoded image's size
(goal ≤ 4×). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
from encoding import smooth_image  # noqa: E402

GOAL = 1.3
# Below this the direct call is a view or a constant-time slice: the ratio then measures
# Python call overhead (a few µs), not the operation.
FLOOR_S = 1e-4
CHAIN_GOAL = 4.0
CHAIN = "make it brighter, increase the contrast, rotate 90 degrees, sharpen, flip horizontally"


def load_cases(only: str | None) -> list[tuple[str, object, object]]:
    cases = []
    for path in sorted((HERE / "opcases").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"opcases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases += [(f"{path.stem}/{name}", ours, direct) for name, ours, direct in module.CASES
                  if only is None or only in name]
    return cases


def timed(function, image, reference) -> float:
    start = time.perf_counter()
    function(image, reference)
    return time.perf_counter() - start


def compare(ours, direct, image, reference, repeat: int) -> tuple[float, float]:
    ours(image, reference), direct(image, reference)  # warm up
    ours_times, direct_times = [], []
    for _ in range(repeat):
        ours_times.append(timed(ours, image, reference))
        direct_times.append(timed(direct, image, reference))
    return statistics.median(ours_times), statistics.median(direct_times)


def reference_image(size: int) -> np.ndarray:
    return np.ascontiguousarray(smooth_image(size)[::-1, :, ::-1])


def run_timings(cases, sizes: list[int], repeat: int) -> int:
    failures = 0
    print(f"{'operation':34} {'size':>5} {'ours ms':>9} {'direct ms':>9} {'ratio':>6}  verdict")
    for size in sizes:
        image, reference = smooth_image(size), reference_image(size)
        reps = repeat if size <= 1024 else max(3, repeat // 3)
        for name, ours, direct in cases:
            ours_s, direct_s = compare(ours, direct, image, reference, reps)
            ratio = ours_s / direct_s if direct_s else float("inf")
            verdict = "PASS" if ratio <= GOAL else "FAIL"
            if direct_s < FLOOR_S and ours_s < FLOOR_S:
                verdict = "n/a (< 0.1 ms)"
            failures += verdict == "FAIL"
            print(f"{name:34} {size:5d} {1e3 * ours_s:9.1f} {1e3 * direct_s:9.1f} {ratio:5.2f}x  {verdict}")
    return failures


CHAIN_SCRIPT = """
import sys, tracemalloc
sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r})
from encoding import smooth_image
from retouch.engine.instructions import read_instructions
from retouch.engine.ops import Context
image = smooth_image(4096)  # 16.8 MP RGB, as decoded
ops = read_instructions({chain!r})
tracemalloc.start()  # NumPy and OpenCV arrays report their buffers to tracemalloc
canvas = image
for op in ops:
    canvas = op.apply(canvas, Context([image]))
peak = tracemalloc.get_traced_memory()[1]
print(image.nbytes, peak, "; ".join(op.describe() for op in ops))
"""


def run_chain_memory() -> None:
    script = CHAIN_SCRIPT.format(src=str(HERE.parent / "src"), bench=str(HERE), chain=CHAIN)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    decoded, added, applied = out.stdout.strip().split(" ", 2)
    decoded, added = int(decoded), int(added)
    ratio = (decoded + added) / decoded
    print(f"\n5-step chain on a 4096x4096 image: {applied}")
    print(f"decoded image {decoded / 2**20:.0f} MB; peak while the chain runs {(decoded + added) / 2**20:.0f} MB "
          f"(image + {added / 2**20:.0f} MB of temporaries) = {ratio:.2f}x the image "
          f"(goal <= {CHAIN_GOAL:.0f}x): {'PASS' if ratio <= CHAIN_GOAL else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--only", default=None, help="run cases whose name contains this")
    args = parser.parse_args()
    cases = load_cases(args.only)
    print(f"{len(cases)} operations; median of {args.repeat} runs at 1024, fewer at larger sizes; "
          f"goal ours <= {GOAL}x direct")
    failures = run_timings(cases, args.sizes, args.repeat)
    print(f"\n{failures} of {len(cases) * len(args.sizes)} timings above {GOAL}x")
    if args.only is None:
        run_chain_memory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
