"""Tiny pipelines for the local-model tests: built once per run, offline, and loaded
through the same ``from_pretrained`` path real weights take."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import require

HAVE_LOCAL = all(importlib.util.find_spec(name) for name in ("torch", "diffusers", "transformers"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Directory of each tiny pipeline kind (and ``dreamomni2-lora``, ``dreamomni2-rewriter``)."""
    require(HAVE_LOCAL, "the local-model extra is not installed (pip install 'retouch[local]')")
    os.environ["HF_HUB_OFFLINE"] = "1"  # any accidental hub call fails at once
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True  # read once, at its import
    from tests.local.tiny import tiny_pipelines

    return tiny_pipelines(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(autouse=True)
def small_qwen_resizes(request, monkeypatch) -> None:
    """Qwen-Image-Edit resizes condition images to ~1 MP: minutes for tiny weights."""
    if HAVE_LOCAL and "tiny" in request.fixturenames:
        from tests.local.tiny import patch_qwen_resizes

        patch_qwen_resizes(monkeypatch)


@pytest.fixture
def models_file(tmp_path, tiny) -> Callable[..., Path]:
    """Write a models file of tiny local models: ``models_file(id=dict(pipeline=…, …), …)``."""
    def write(**models: dict) -> Path:
        entries = []
        for model_id, fields in models.items():
            kind = fields.get("pipeline", model_id)
            entries.append({"id": model_id, "provider": "diffusers", "pipeline": kind, "weights": str(tiny.get(kind, "")),
                            "dtype": "float32", "device": "cpu", "steps": 2, **fields})
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump({"models": entries}))
        return path

    return write


@pytest.fixture
def local_server(make_settings, models_file) -> Callable[..., Iterator[str]]:
    """``with local_server(settings_overrides, **models) as url``: retouch serving them."""
    import contextlib

    from tests.servers import running_retouch

    @contextlib.contextmanager
    def serve(overrides: dict | None = None, **models: dict) -> Iterator[str]:
        settings = make_settings(models_file=models_file(**models), **(overrides or {}))
        with running_retouch(settings) as url:
            yield url

    return serve
