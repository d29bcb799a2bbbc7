"""Running local pipelines in this process: shared by every local model of a server.

    turn on the device (FairQueue) → the pipeline (PipelineCache: load on first use, evict
    least recently used) → the call, in the device's one worker thread

A job runs in a thread (torch blocks); cancelling the waiting task sets a flag that the
pipeline's ``callback_on_step_end`` reads after every step, so a job whose client went
away stops within one step and frees the device. torch is imported only in the thread.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from PIL import Image

from retouch.local.cache import PipelineCache
from retouch.local.families import Call
from retouch.local.previews import DECODERS
from retouch.local.queue import FairQueue
from retouch.local.spec import LocalSpec

log = logging.getLogger("retouch.local")

# Called from the worker thread with (step, images) for each partial image.
PreviewSink = Callable[[int, list[Image.Image]], None]


class Interrupted(Exception):
    """Raised inside the pipeline's step callback to stop a cancelled job."""


@dataclass
class Loaded:
    """A pipeline ready on its device, and DreamOmni2's instruction rewriter if any."""

    pipeline: Any
    device: str
    rewriter: Any = None


@dataclass(frozen=True)
class Outcome:
    images: list[Image.Image]
    prompt: str  # as run: DreamOmni2's rewriter may have rewritten it
    seed: int


class LocalRuntime:
    """The loaded pipelines (within ``budget_bytes``; 0: none) and one queue and one
    worker thread per device."""

    def __init__(self, budget_bytes: int = 0) -> None:
        self.cache = PipelineCache(budget_bytes, release=release_memory)
        self._queues: dict[str, FairQueue] = {}
        self._threads: dict[str, ThreadPoolExecutor] = {}

    async def run(self, spec: LocalSpec, call: Call, *, seed: int, caller: str,
                  previews: frozenset[int] = frozenset(), on_preview: PreviewSink | None = None) -> Outcome:
        """Run ``call`` with the pipeline ``spec`` names: one job at a time per device."""
        device = await anyio.to_thread.run_sync(resolve_device, spec.device)
        async with self._queue(device).turn(caller):
            async with self.cache.using(spec.key, lambda: self._load(spec, device),
                                        estimate=estimate_bytes(spec), measure=_measure(spec)) as loaded:
                cancel = threading.Event()
                work = lambda: execute(loaded, spec, call, seed, cancel, previews, on_preview)  # noqa: E731
                return await _in_thread(self._thread(device), work, cancel)

    async def _load(self, spec: LocalSpec, device: str) -> Loaded:
        return await _in_thread(self._thread(device), lambda: load(spec, device), threading.Event())

    def _queue(self, device: str) -> FairQueue:
        return self._queues.setdefault(device, FairQueue())

    def _thread(self, device: str) -> ThreadPoolExecutor:
        if device not in self._threads:
            self._threads[device] = ThreadPoolExecutor(1, thread_name_prefix=f"retouch-{device}")
        return self._threads[device]

    def close(self) -> None:
        for executor in self._threads.values():
            executor.shutdown(wait=False, cancel_futures=True)


async def _in_thread(executor: ThreadPoolExecutor, work: Callable[[], Any], cancel: threading.Event) -> Any:
    """``work()`` in ``executor``; when the caller is cancelled, set ``cancel`` and wait for
    the thread to notice (the device stays busy until it does)."""
    future = asyncio.get_running_loop().run_in_executor(executor, work)
    try:
        return await asyncio.shield(future)
    except BaseException:
        cancel.set()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([future])
        raise


# -- in the worker thread ----------------------------------------------------------------


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(spec: LocalSpec, device: str) -> Loaded:
    """``from_pretrained`` as for any diffusers pipeline, LoRAs on top, placed on ``device``."""
    import torch

    _quiet_progress_bars()
    module_name, _, class_name = spec.family.class_path.partition(":")
    pipeline_class = getattr(importlib.import_module(module_name), class_name)
    _prepare(spec)
    pipeline = pipeline_class.from_pretrained(spec.weights, dtype=getattr(torch, spec.dtype))
    if spec.loras:
        for lora in spec.loras:
            pipeline.load_lora_weights(lora.weights, weight_name=lora.weight_name, adapter_name=lora.name)
        pipeline.set_adapters([lora.name for lora in spec.loras],
                              adapter_weights=[lora.scale for lora in spec.loras])
    _place(pipeline, spec.cpu_offload, device)
    pipeline.set_progress_bar_config(disable=True)
    return Loaded(pipeline, device, _rewriter(spec, device))


def _quiet_progress_bars() -> None:
    """Loading progress bars are for terminals; a server's log wants none."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _prepare(spec: LocalSpec) -> None:
    """What loading a family needs in this environment (see ``local/compat.py``)."""
    try:
        compat = importlib.import_module("retouch.local.compat")
    except ModuleNotFoundError:
        return
    prepare = getattr(compat, "prepare_loading", None)
    if prepare is not None:
        prepare(spec.family.kind)


def _place(pipeline: Any, cpu_offload: str, device: str) -> None:
    if cpu_offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif cpu_offload == "sequential":
        pipeline.enable_sequential_cpu_offload(device=device)
    else:
        pipeline.to(device)


def _rewriter(spec: LocalSpec, device: str) -> Any:
    if not spec.rewriter:
        return None
    from retouch.local.dreamomni2 import InstructionRewriter

    return InstructionRewriter.from_pretrained(spec.rewriter, device=device, dtype=spec.dtype,
                                               task=spec.rewriter_task)


def execute(loaded: Loaded, spec: LocalSpec, call: Call, seed: int, cancel: threading.Event,
            previews: frozenset[int], on_preview: PreviewSink | None) -> Outcome:
    """One pipeline call, stopped at the next step once ``cancel`` is set."""
    import torch

    if cancel.is_set():
        raise Interrupted
    kwargs = dict(call.kwargs)
    if loaded.rewriter is not None:
        kwargs["prompt"] = loaded.rewriter.rewrite(kwargs["prompt"], _as_list(kwargs["image"]))
    decode = DECODERS[spec.family.kind]

    def after_step(pipeline, step: int, timestep, tensors: dict) -> dict:
        if cancel.is_set():
            raise Interrupted
        if on_preview is not None and step in previews:
            with torch.no_grad():
                on_preview(step, decode(pipeline, tensors["latents"], call.height, call.width))
        return {}

    # A CPU generator gives the same noise whatever the device: seeds reproduce anywhere.
    generator = torch.Generator("cpu").manual_seed(seed)
    result = loaded.pipeline(**kwargs, generator=generator, output_type="pil",
                             callback_on_step_end=after_step, callback_on_step_end_tensor_inputs=["latents"])
    return Outcome(list(result.images), kwargs["prompt"], seed)


def _as_list(image: Any) -> list[Any]:
    return list(image) if isinstance(image, list) else [image]


# -- memory ------------------------------------------------------------------------------


def loaded_bytes(loaded: Loaded) -> int:
    """Parameters and buffers of every module of the pipeline (and the rewriter)."""
    modules = [c for c in loaded.pipeline.components.values() if hasattr(c, "parameters")]
    if loaded.rewriter is not None and hasattr(loaded.rewriter, "model"):
        modules.append(loaded.rewriter.model)
    return sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))


def _measure(spec: LocalSpec) -> Callable[[Loaded], int]:
    """A declared ``memory_gb`` is believed over the measure (offloaded weights, say,
    take less on the device than their parameters add up to)."""
    if spec.memory_gb is not None:
        return lambda loaded: int(spec.memory_gb * 1e9)
    return loaded_bytes


def estimate_bytes(spec: LocalSpec) -> int:
    """What a pipeline will take before it is loaded: the declared ``memory_gb``, else the
    size of its weight files when they are a local directory, else nothing known (0)."""
    if spec.memory_gb is not None:
        return int(spec.memory_gb * 1e9)
    path = spec.weights_path
    if path is None or not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.suffix in (".safetensors", ".bin"))


def release_memory(loaded: Loaded) -> None:
    """After eviction: drop the references and give the device memory back."""
    loaded.pipeline = None
    loaded.rewriter = None
    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
