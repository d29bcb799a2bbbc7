"""Benchmark: local diffusers models on tiny pipelines (CPU, offline), measured side by side.

Run: ``.venv/bin/python bench/local_models.py [--size 128] [--steps 4] [--rounds 3] [--requests 4]``

1. ``n=4`` in one batched call (``num_images_per_prompt=4``) against four calls of one
   image each, same pipeline, size and steps: the ratio of their times.
2. Throughput of the same edit through retouch (``retouch serve`` in its own process,
   the tiny pipeline as a ``provider: diffusers`` model, requests one after another)
   against calling the pipeline directly in this process; rounds alternate between the
   two so that machine noise hits both alike. Goal: API ≥ 0.9 × direct.

The tiny pipelines (``tests/local/tiny.py``) have random weights; at ``--size`` 128 and 4
steps a call takes long enough that the pipeline, not a millisecond of HTTP, is what a
real model's request is made of. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import RetouchServer  # noqa: E402

KIND = "instruct-pix2pix"  # its tiny VAE downsamples; tiny Kontext's does not (slow at 256²)
RATIO_GOAL = 0.9


def photo(size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    return Image.fromarray(np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8))


def kwargs(image: Image.Image, size: int, steps: int, n: int) -> dict:
    """What retouch passes instruct-pix2pix (families.py), the image already at ``size``."""
    return dict(image=image, prompt="make it snowy", num_inference_steps=steps, guidance_scale=7.5,
                image_guidance_scale=1.5, num_images_per_prompt=n)


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def batching(pipeline, size: int, steps: int, rounds: int) -> None:
    import torch

    image = photo(size)
    generator = lambda: torch.Generator("cpu").manual_seed(0)  # noqa: E731
    pipeline(**kwargs(image, size, steps, 1), generator=generator())  # warm up
    batched, singles = [], []
    for _ in range(rounds):
        batched.append(timed(lambda: pipeline(**kwargs(image, size, steps, 4), generator=generator())))
        singles.append(timed(lambda: [pipeline(**kwargs(image, size, steps, 1), generator=generator())
                                      for _ in range(4)]))
    b, s = statistics.median(batched), statistics.median(singles)
    print(f"1. n=4 at {size}x{size}, {steps} steps: one batched call {b:.2f} s, four single calls {s:.2f} s "
          f"→ batched takes {b / s:.2f}x the time ({s / b:.2f}x the throughput)")


def through_api(pipeline, weights: Path, size: int, steps: int, rounds: int, requests: int) -> None:
    import torch

    image = photo(size)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    body = {"model": "tiny", "prompt": "make it snowy", "response_format": "b64_json", "seed": "1"}
    models = Path(tempfile.mkdtemp()) / "models.yaml"
    models.write_text(f"models:\n  - {{id: tiny, provider: diffusers, pipeline: {KIND}, weights: '{weights}', "
                      f"dtype: float32, device: cpu, steps: {steps}}}\n")
    env = {"RETOUCH_MODELS_FILE": str(models), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    api, direct = [], []
    with RetouchServer(env=env, start_timeout=120) as server, httpx.Client(timeout=300) as client:
        def post() -> None:
            answer = client.post(f"{server.url}/v1/images/edits", data=body,
                                 files={"image": ("a.png", buffer.getvalue(), "image/png")})
            assert answer.status_code == 200, answer.text
            base64.b64decode(answer.json()["data"][0]["b64_json"])

        def call() -> None:
            pipeline(**kwargs(image, size, steps, 1), generator=torch.Generator("cpu").manual_seed(1))

        post(), call()  # warm up: the server loads the pipeline on its first request
        for _ in range(rounds):
            api.append(requests / timed(lambda: [post() for _ in range(requests)]))
            direct.append(requests / timed(lambda: [call() for _ in range(requests)]))
    a, d = statistics.median(api), statistics.median(direct)
    verdict = "PASS" if a / d >= RATIO_GOAL else "FAIL"
    print(f"2. {requests} edits one after another, {size}x{size}, {steps} steps: through the API "
          f"{a:.2f} img/s, direct {d:.2f} img/s → {a / d:.2f}x (goal ≥ {RATIO_GOAL}) {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4, help="per round and side, in part 2")
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import diffusers
    import torch

    from tests.local.tiny import build_tiny

    weights = build_tiny(KIND, Path(tempfile.mkdtemp()) / KIND)
    pipeline = diffusers.StableDiffusionInstructPix2PixPipeline.from_pretrained(weights, dtype=torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    print(f"tiny {KIND} pipeline, CPU, {torch.get_num_threads()} torch threads; median of {args.rounds} rounds")
    batching(pipeline, args.size, args.steps, args.rounds)
    through_api(pipeline, weights, args.size, args.steps, args.rounds, args.requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
