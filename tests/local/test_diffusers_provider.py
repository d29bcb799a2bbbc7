"""Local diffusers models through the HTTP API, on tiny pipelines (CPU, offline)."""

from __future__ import annotations

import base64
import json
import socket
import time
from urllib.parse import urlparse

import httpx
import numpy as np
import openai
import pytest

from retouch.app import create_app
from tests.images import decode, gradient, png, solid
from tests.servers import serving

KINDS_ONE_IMAGE = ("instruct-pix2pix", "flux-kontext", "qwen-image-edit")
KINDS_SEVERAL = ("qwen-image-edit-plus", "flux2-klein")


def edit(base: str, *images: bytes, timeout: float = 60, **fields) -> httpx.Response:
    files = [("image[]", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    data = {"prompt": "make it snowy", "response_format": "b64_json", **{k: str(v) for k, v in fields.items()}}
    return httpx.post(f"{base}/v1/images/edits", data=data, files=files, timeout=timeout)


def pixels_of(answer: httpx.Response) -> list[np.ndarray]:
    assert answer.status_code == 200, answer.text
    return [decode(base64.b64decode(item["b64_json"])) for item in answer.json()["data"]]


def photo(width: int = 64, height: int = 64) -> bytes:
    return png(gradient(width, height))


@pytest.mark.parametrize("kind", KINDS_ONE_IMAGE + KINDS_SEVERAL)
def test_each_pipeline_edits_at_the_size_asked_for_and_a_seed_reproduces_it(local_server, kind):
    with local_server(**{kind: {}}) as base:
        first = edit(base, photo(96, 64), model=kind, seed=7)
        again = edit(base, photo(96, 64), model=kind, seed=7)
        other = edit(base, photo(96, 64), model=kind, seed=8)
    [a], [b], [c] = pixels_of(first), pixels_of(again), pixels_of(other)
    assert a.shape[:2] == (64, 96)  # the first image's size
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert first.headers["x-retouch-seed"] == "7" and first.headers["x-retouch-model"] == kind


def test_without_a_seed_the_seed_used_is_returned_and_reproduces_the_image(local_server):
    with local_server(**{"flux-kontext": {}}) as base:
        first = edit(base, photo(), model="flux-kontext")
        seed = int(first.headers["x-retouch-seed"])
        again = edit(base, photo(), model="flux-kontext", seed=seed)
    assert np.array_equal(pixels_of(first)[0], pixels_of(again)[0])


def test_n_is_one_batched_call_matching_the_pipeline_run_directly(local_server, tiny):
    import diffusers
    import torch
    from PIL import Image

    with local_server(**{"flux-kontext": {}}) as base:
        answer = edit(base, photo(), model="flux-kontext", n=2, seed=3)
    served = pixels_of(answer)
    pipeline = diffusers.FluxKontextPipeline.from_pretrained(tiny["flux-kontext"], torch_dtype=torch.float32)
    direct = pipeline(image=Image.open(__import__("io").BytesIO(photo())).convert("RGB"), prompt="make it snowy",
                      num_inference_steps=2, guidance_scale=3.5, num_images_per_prompt=2, height=64, width=64,
                      max_area=64 * 64, _auto_resize=False, generator=torch.Generator("cpu").manual_seed(3)).images
    assert len(served) == 2 and not np.array_equal(served[0], served[1])
    for ours, theirs in zip(served, direct):
        assert np.abs(ours.astype(int) - np.asarray(theirs).astype(int)).max() <= 1  # PNG round trip


@pytest.mark.parametrize("kind", KINDS_SEVERAL)
def test_several_input_images_all_count(local_server, kind):
    with local_server(**{kind: {}}) as base:
        alone = edit(base, photo(), model=kind, seed=1)
        with_red = edit(base, photo(), png(solid((255, 0, 0), 64, 64)), model=kind, seed=1)
        with_blue = edit(base, photo(), png(solid((0, 0, 255), 64, 64)), model=kind, seed=1)
    [a], [r], [b] = pixels_of(alone), pixels_of(with_red), pixels_of(with_blue)
    assert not np.array_equal(a, r) and not np.array_equal(r, b)


def test_more_images_than_the_pipeline_reads_is_a_400(local_server):
    with local_server(**{"flux-kontext": {}}) as base:
        answer = edit(base, photo(), photo(), model="flux-kontext")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "image"


def test_a_mask_keeps_the_edit_inside_it(local_server):
    original = gradient(64, 64)
    mask = np.zeros((64, 64, 4), np.uint8)
    mask[..., 3] = 255
    mask[16:48, 16:48, 3] = 0  # transparent: edit here
    with local_server(**{"instruct-pix2pix": {}}) as base:
        answer = httpx.post(f"{base}/v1/images/edits", timeout=60,
                            data={"prompt": "make it snowy", "model": "instruct-pix2pix", "response_format": "b64_json"},
                            files={"image": ("a.png", png(original), "image/png"), "mask": ("m.png", png(mask), "image/png")})
    [result] = pixels_of(answer)
    outside = mask[..., 3] == 255
    assert np.array_equal(result[outside], original[outside])
    assert not np.array_equal(result[~outside], original[~outside])


def test_streaming_sends_partial_images_then_the_result(local_server):
    with local_server(**{"flux-kontext": {"steps": 6}}) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        events = list(client.images.edit(model="flux-kontext", image=("a.png", photo(80, 64), "image/png"),
                                         prompt="make it snowy", stream=True, partial_images=2,
                                         extra_body={"seed": 5}))
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    shapes = {decode(base64.b64decode(e.b64_json)).shape[:2] for e in events}
    assert shapes == {(64, 80)}  # partials at the requested size too
    assert events[0].b64_json != events[-1].b64_json


def test_a_stream_that_fails_midway_ends_with_an_error_event(local_server):
    with local_server(**{"flux-kontext": {"steps": 4}}) as base:
        with httpx.stream("POST", f"{base}/v1/images/edits", timeout=60,
                          data={"model": "flux-kontext", "prompt": "x", "stream": "true", "partial_images": "1",
                                "steps": "500"},  # above the 200 a request may ask for
                          files={"image": ("a.png", photo(), "image/png")}) as answer:
            body = answer.read().decode()
    # Refused before the stream starts: an ordinary 400, not an event.
    assert answer.status_code == 400 and "steps" in body


def test_backend_fields_are_validated_and_unknown_ones_refused(local_server):
    with local_server(**{"flux-kontext": {}, "instruct-pix2pix": {}}) as base:
        assert edit(base, photo(), model="flux-kontext", steps=3, guidance_scale=2.0).status_code == 200
        wrong = edit(base, photo(), model="flux-kontext", image_guidance_scale=1.2)
        unknown = edit(base, photo(), model="flux-kontext", sampler="ddim")
        fine = edit(base, photo(), model="instruct-pix2pix", image_guidance_scale=1.2)
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "image_guidance_scale"
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "sampler"
    assert fine.status_code == 200


def test_pipelines_are_evicted_least_recently_used_under_a_small_budget(make_settings, models_file):
    kinds = ("flux-kontext", "instruct-pix2pix")
    models = models_file(**{kind: {"memory_gb": 0.006} for kind in kinds})
    settings = make_settings(models_file=models, local_memory_gb=0.01)  # room for one, not both
    app = create_app(settings)
    with serving(app) as base:
        for kind in ("flux-kontext", "instruct-pix2pix", "flux-kontext"):
            assert edit(base, photo(), model=kind).status_code == 200
        cache = app.state.service.registry.shared["local-runtime"].cache
        assert [key.split("|")[0] for key in cache.evictions] == ["flux-kontext", "instruct-pix2pix"]
        assert [key.split("|")[0] for key in cache.loaded] == ["flux-kontext"]


def test_a_client_that_hangs_up_stops_its_job_and_frees_the_device(local_server):
    # 100,000 steps would take hours: only cancellation lets the next job run in time.
    with local_server(**{"endless": {"pipeline": "instruct-pix2pix", "steps": 100_000},
                         "instruct-pix2pix": {}}) as base:
        address = urlparse(base)
        request = httpx.Client().build_request(
            "POST", f"{base}/v1/images/edits", data={"model": "endless", "prompt": "x"},
            files={"image": ("a.png", photo(), "image/png")})
        with socket.create_connection((address.hostname, address.port)) as conn:
            head = "POST /v1/images/edits HTTP/1.1\r\nHost: x\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
            conn.sendall(head.encode() + request.read())
            time.sleep(1.0)  # the endless job is running now
        answer = edit(base, photo(), model="instruct-pix2pix", timeout=60)
    assert answer.status_code == 200


def test_unavailable_models_say_why_and_how_to_fix_it(local_server, tmp_path):
    with local_server(**{"missing": {"pipeline": "flux-kontext", "weights": str(tmp_path / "nowhere")},
                         "on-gpu": {"pipeline": "flux-kontext", "device": "cuda"}}) as base:
        cards = {card["id"]: card for card in httpx.get(f"{base}/v1/models").json()["data"]}
        refused = edit(base, photo(), model="missing")
    assert not cards["missing"]["available"] and "not found at" in cards["missing"]["unavailable_reason"]
    assert str(tmp_path / "nowhere") in cards["missing"]["unavailable_reason"]
    assert not cards["on-gpu"]["available"] and "no CUDA device" in cards["on-gpu"]["unavailable_reason"]
    assert cards["missing"]["license"].startswith("FLUX.1 [dev] Non-Commercial")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"


def test_without_the_extra_a_local_model_says_to_install_it(tmp_path, tiny):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('torch', 'diffusers', 'transformers'): sys.modules[name] = None\n"
        "from retouch.providers.diffusers_local import DiffusersEditModel\n"
        f"model = DiffusersEditModel('m', config={{'pipeline': 'flux-kontext', 'weights': {str(tiny['flux-kontext'])!r}}})\n"
        "a = model.availability(); print(a.available, '|', a.reason, '|', a.fix)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("False") and "pip install 'retouch[local]'" in out.stdout, out.stderr


def test_a_bad_local_model_entry_stops_the_server_with_the_field_named(make_settings, models_file):
    from retouch.providers.registry import ConfigError

    with pytest.raises(ConfigError, match="pipeline 'sdxl-turbo' is not one retouch knows"):
        create_app(make_settings(models_file=models_file(x={"pipeline": "sdxl-turbo"})))
    with pytest.raises(ConfigError, match="dtype 'int8'"):
        create_app(make_settings(models_file=models_file(**{"flux-kontext": {"dtype": "int8"}})))


def test_the_models_directory_shows_capabilities_and_licences(local_server):
    with local_server(**{kind: {} for kind in KINDS_ONE_IMAGE + KINDS_SEVERAL}) as base:
        cards = {card["id"]: card for card in httpx.get(f"{base}/v1/models").json()["data"]}
    assert cards["qwen-image-edit-plus"]["capabilities"]["max_input_images"] == 3
    assert cards["flux2-klein"]["capabilities"]["max_input_images"] == 4
    assert cards["instruct-pix2pix"]["capabilities"]["supports_mask"] is True
    assert cards["qwen-image-edit"]["license"].startswith("Apache-2.0")
    assert all(card["available"] for card in cards.values() if card["provider"] == "diffusers")
    assert json.dumps(cards)  # serialisable as served


def test_dreamomni2_reads_the_image_to_edit_then_references_with_its_lora_and_rewriter(local_server, tiny, tmp_path):
    from tests.local.tiny_dreamomni2 import build_tiny_lora, build_tiny_rewriter

    lora = build_tiny_lora(tiny["flux-kontext"], tmp_path / "edit-lora.safetensors")
    rewriter = build_tiny_rewriter(tmp_path / "rewriter")
    base_entry = {"pipeline": "dreamomni2", "weights": str(tiny["flux-kontext"])}
    with local_server(**{"dreamomni2": {**base_entry, "loras": [{"weights": str(lora)}],
                                        "rewriter": {"weights": str(rewriter)}},
                         "dreamomni2-bare": base_entry}) as base:
        red, blue = png(solid((255, 0, 0), 64, 64)), png(solid((0, 0, 255), 64, 64))
        with_red = edit(base, photo(), red, model="dreamomni2", seed=2)
        with_blue = edit(base, photo(), blue, model="dreamomni2", seed=2)
        bare = edit(base, photo(), red, model="dreamomni2-bare", seed=2)
        cards = {card["id"]: card for card in httpx.get(f"{base}/v1/models").json()["data"]}
    [r], [b], [plain] = pixels_of(with_red), pixels_of(with_blue), pixels_of(bare)
    assert not np.array_equal(r, b)  # the reference counts
    assert not np.array_equal(r, plain)  # the LoRA counts
    assert cards["dreamomni2"]["capabilities"]["max_input_images"] == 4
    assert "Non-Commercial" in cards["dreamomni2"]["license"]


def test_a_local_model_behind_a_route_runs_with_the_shared_runtime(make_settings, tiny, tmp_path):
    import yaml

    from tests.servers import running_retouch

    models = tmp_path / "routed.yaml"
    models.write_text(yaml.safe_dump({"models": [{"id": "routed-local", "deployments": [{
        "provider": "diffusers", "pipeline": "instruct-pix2pix", "weights": str(tiny["instruct-pix2pix"]),
        "dtype": "float32", "device": "cpu", "steps": 2}]}]}))
    with running_retouch(make_settings(models_file=models)) as base:
        answer = edit(base, photo(), model="routed-local", seed=4)
    assert len(pixels_of(answer)) == 1 and answer.headers["x-retouch-model"] == "routed-local"


def test_a_ray_model_is_judged_by_the_cluster_not_by_the_api_host(local_server, tmp_path):
    # The API host has no GPU and not the weights: the GPU machines of the cluster do.
    with local_server(**{"on-cluster": {"pipeline": "flux-kontext", "device": "cuda",
                                        "weights": "/models/only-on-the-gpu-hosts", "backend": "ray"}}) as base:
        card = httpx.get(f"{base}/v1/models/on-cluster").json()
    assert card["available"] is True, card
