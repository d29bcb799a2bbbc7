"""A local model as the models file declares it, checked once at start-up.

    - id: qwen-image-edit-plus-local
      provider: diffusers
      pipeline: qwen-image-edit-plus      # a kind from families.FAMILIES
      weights: Qwen/Qwen-Image-Edit-2509  # a Hugging Face hub id or a local directory
      dtype: bfloat16                     # float16 | bfloat16 | float32
      device: cuda                        # auto (cuda when there is one) | cuda | cuda:1 | cpu
      cpu_offload: model                  # none | model | sequential (saves VRAM, costs speed)
      steps: 40                           # default num_inference_steps
      guidance: 4.0                       # default guidance (true_cfg_scale for Qwen)
      max_area: 1048576                   # pixels the pipeline works at, at most
      memory_gb: 58                       # what it takes loaded (else measured; its files' size before)
      loras: [{weights: org/lora, weight_name: edit.safetensors, scale: 1.0}]
      rewriter: {weights: Qwen/Qwen2.5-VL-7B-Instruct, task: edit}   # DreamOmni2's rewriter (edit | generation)
      license: Apache-2.0                 # shown in the models directory (default: the family's)
      backend: local                      # local (in this process) | ray (a Ray Serve deployment)
      ray: {num_gpus: 1, min_replicas: 1, max_replicas: 2, max_ongoing_requests: 4}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retouch.local.families import FAMILIES, Family

DTYPES = ("float16", "bfloat16", "float32")
OFFLOADS = ("none", "model", "sequential")
BACKENDS = ("local", "ray")
DEFAULT_MAX_AREA = 1024 * 1024


class SpecError(ValueError):
    """A local model entry that cannot work; the message names the field and the fix."""


@dataclass(frozen=True)
class Lora:
    weights: str
    weight_name: str | None = None
    scale: float = 1.0
    name: str = "lora0"


@dataclass(frozen=True)
class LocalSpec:
    model_id: str
    family: Family
    weights: str
    dtype: str = "bfloat16"
    device: str = "auto"
    cpu_offload: str = "none"
    steps: int = 0
    guidance: float = 0.0
    max_area: int = DEFAULT_MAX_AREA
    memory_gb: float | None = None
    loras: tuple[Lora, ...] = ()
    rewriter: str | None = None
    rewriter_task: str = "edit"
    license: str = ""
    backend: str = "local"
    ray: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies the loaded pipeline: two ids with the same weights share it."""
        loras = ",".join(f"{lora.weights}:{lora.weight_name}:{lora.scale}" for lora in self.loras)
        return f"{self.family.kind}|{self.weights}|{self.dtype}|{self.device}|{self.cpu_offload}|{loras}|{self.rewriter}"

    @property
    def weights_path(self) -> Path | None:
        """The weights as a local directory, when they are given as one."""
        looks_local = self.weights.startswith(("/", ".", "~")) or Path(self.weights).expanduser().exists()
        return Path(self.weights).expanduser() if looks_local else None


def read_spec(model_id: str, config: dict[str, Any]) -> LocalSpec:
    """The entry's settings, validated; ``SpecError`` names what is wrong."""
    kind = str(config.get("pipeline") or "")
    if kind not in FAMILIES:
        raise SpecError(f"{model_id}: pipeline {kind!r} is not one retouch knows; choose one of "
                        f"{', '.join(FAMILIES)}")
    family = FAMILIES[kind]
    if not config.get("weights"):
        raise SpecError(f"{model_id}: 'weights' is required: a Hugging Face hub id or a local directory")
    spec = LocalSpec(
        model_id=model_id, family=family, weights=str(config["weights"]),
        dtype=_choice(model_id, config, "dtype", DTYPES, "bfloat16"),
        device=str(config.get("device") or "auto"),
        cpu_offload=_choice(model_id, config, "cpu_offload", OFFLOADS, "none"),
        steps=_positive(model_id, config, "steps", int, family.steps),
        guidance=_positive(model_id, config, "guidance", float, family.guidance),
        max_area=_positive(model_id, config, "max_area", int, DEFAULT_MAX_AREA),
        memory_gb=float(config["memory_gb"]) if config.get("memory_gb") is not None else None,
        loras=tuple(_lora(model_id, item, index) for index, item in enumerate(config.get("loras") or [])),
        rewriter=_rewriter(config.get("rewriter")),
        rewriter_task=_rewriter_task(model_id, config.get("rewriter")),
        license=str(config.get("license") or family.license),
        backend=_choice(model_id, config, "backend", BACKENDS, "local"),
        ray=dict(config.get("ray") or {}),
    )
    if spec.rewriter and kind != "dreamomni2":
        raise SpecError(f"{model_id}: 'rewriter' is for the dreamomni2 pipeline only")
    return spec


def _choice(model_id: str, config: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(config.get(name) or default)
    if value not in allowed:
        raise SpecError(f"{model_id}: {name} {value!r} is not one of {', '.join(allowed)}")
    return value


def _positive(model_id: str, config: dict, name: str, kind: type, default):
    value = config.get(name)
    if value is None:
        return default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise SpecError(f"{model_id}: {name} must be a number, not {config[name]!r}") from None
    if value <= 0:
        raise SpecError(f"{model_id}: {name} must be above 0, not {value}")
    return value


def _lora(model_id: str, item: Any, index: int) -> Lora:
    if isinstance(item, str):
        return Lora(weights=item, name=f"lora{index}")
    if not isinstance(item, dict) or not item.get("weights"):
        raise SpecError(f"{model_id}: each of 'loras' needs 'weights' (a hub id, a file or a directory)")
    return Lora(weights=str(item["weights"]), weight_name=item.get("weight_name"),
                scale=float(item.get("scale", 1.0)), name=str(item.get("name") or f"lora{index}"))


def _rewriter_task(model_id: str, value: Any) -> str:
    task = str(value.get("task") or "edit") if isinstance(value, dict) else "edit"
    if task not in ("edit", "generation"):
        raise SpecError(f"{model_id}: rewriter task {task!r} is not edit or generation (the LoRA it goes with)")
    return task


def _rewriter(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return str(value.get("weights") or "") or None
    return str(value)
