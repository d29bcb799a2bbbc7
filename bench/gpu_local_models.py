"""Benchmark for a GPU machine with real weights: per local model, load time, seconds per
denoising step, images per minute and peak GPU memory.

Run: ``python bench/gpu_local_models.py --models-file models.yaml [--size 1024] [--n 1]
[--calls 3] [--only ID …]``, or ``--tiny`` to check the script itself on tiny random
pipelines (built offline by ``tests/local/tiny.py``) on whatever device there is.

Every ``provider: diffusers`` entry of the models file is loaded the way retouch loads it
(``retouch.local.runtime.load``: dtype, device, CPU offload and LoRAs as declared) and
called the way retouch calls it (``families.Family.call`` and ``runtime.execute``), once
to warm up and then ``--calls`` times on a photo-like ``--size`` square. Seconds per step
come from the step callback's clock; peak memory from ``torch.cuda.max_memory_allocated``
(reset per model). A model that fails to load or run is reported and the rest go on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from retouch.local import runtime  # noqa: E402
from retouch.local.families import snap  # noqa: E402
from retouch.local.spec import read_spec  # noqa: E402


def photo(size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    bands = [x * 255 // size, y * 255 // size, ((x // 32 + y // 32) % 2) * 200]
    return Image.fromarray(np.stack(bands, -1).astype(np.uint8))


def entries(path: Path | None, tiny: bool) -> dict[str, dict]:
    if tiny:
        from tests.local.tiny import KINDS, build_tiny

        root = Path(tempfile.mkdtemp())
        device = "cuda" if _cuda() else "cpu"
        return {f"tiny-{kind}": {"pipeline": kind, "weights": str(build_tiny(kind, root / kind)),
                                 "device": device, "dtype": "bfloat16" if device == "cuda" else "float32"}
                for kind in KINDS}
    models = yaml.safe_load(Path(path).read_text())["models"]
    return {m["id"]: m for m in models if m.get("provider") == "diffusers"}


def measure(model_id: str, config: dict, size: int, n: int, calls: int) -> str:
    import torch

    spec = read_spec(model_id, config)
    device = runtime.resolve_device(spec.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    loaded = runtime.load(spec, device)
    load_s = time.perf_counter() - started
    working = snap((size, size), spec.family.grid, spec.max_area)
    images = [photo(working[0])] * min(2, spec.family.max_images)
    call = spec.family.call("make it look like winter", images, size=working, n=n, steps=spec.steps,
                            guidance=spec.guidance, options={})
    step_times: list[float] = []

    def timed_preview(step: int, _images) -> None:  # never called: no previews asked for
        pass

    def run_once() -> float:
        marks = [time.perf_counter()]
        original = loaded.pipeline.scheduler.step

        def stepping(*args, **kwargs):  # the scheduler steps once per denoising step
            result = original(*args, **kwargs)
            marks.append(time.perf_counter())
            return result

        loaded.pipeline.scheduler.step = stepping
        try:
            runtime.execute(loaded, spec, call, 0, threading.Event(), frozenset(), timed_preview)
        finally:
            loaded.pipeline.scheduler.step = original
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        step_times.extend(b - a for a, b in zip(marks[1:], marks[2:]))
        return time.perf_counter() - marks[0]

    run_once()  # warm up
    step_times.clear()
    totals = [run_once() for _ in range(calls)]
    per_call = statistics.median(totals)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    per_step = statistics.median(step_times) if step_times else float("nan")
    return (f"{model_id:<28} {spec.family.kind:<22} {device:<6} {spec.dtype:<9} {working[0]}x{working[1]} "
            f"load {load_s:6.1f} s  {per_call:6.2f} s/call  {per_step:6.3f} s/step  "
            f"{60 * n / per_call:7.1f} img/min  peak {peak:6.1f} GiB")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-file", type=Path)
    parser.add_argument("--tiny", action="store_true", help="tiny random pipelines instead of real weights")
    parser.add_argument("--size", type=int, default=None, help="default 1024 (64 with --tiny)")
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="model ids to measure")
    args = parser.parse_args()
    if not args.tiny and not args.models_file:
        parser.error("give --models-file (real weights) or --tiny")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    args.size = args.size or (64 if args.tiny else 1024)
    if args.tiny:  # tiny Qwen pipelines would resize their condition images to ~1 MP
        import pytest

        from tests.local.tiny import patch_qwen_resizes

        patch_qwen_resizes(pytest.MonkeyPatch(), area=args.size * args.size)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {gpu}; size {args.size}, n={args.n}, median of {args.calls} calls")
    for model_id, config in entries(args.models_file, args.tiny).items():
        if args.only and model_id not in args.only:
            continue
        try:
            print(measure(model_id, config, args.size, args.n, args.calls), flush=True)
        except Exception as exc:  # report and go on with the next model
            print(f"{model_id:<28} FAILED: {type(exc).__name__}: {exc}", flush=True)
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
