"""The ``stability`` backend against a fake Stability AI v2beta edit API."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest
import yaml
from PIL import Image

from retouch.errors import InvalidRequestError, UpstreamError
from retouch.inputs import InputImage, Slot
from retouch.providers.base import EditJob
from retouch.providers.registry import ConfigError
from retouch.providers.stability import (
    OPERATIONS,
    StabilityEditModel,
    StabilityOptions,
    build_request,
    dropped_params,
)
from tests.images import decode, encode, gradient, png, solid
from tests.providers.fake_stability import FakeStability, Reply, running
from tests.servers import running_retouch

KEY = "sk-stability-test-0123456789"
RESULT = gradient(64, 48)[::-1].copy()  # what the fake "paints"


def input_image(pixels: np.ndarray, fmt: str = "PNG", param: str = "image") -> InputImage:
    data = encode(pixels, fmt)
    return InputImage(io.BytesIO(data), fmt, (pixels.shape[1], pixels.shape[0]), Slot(param, 0))


def openai_mask(width: int = 64, height: int = 48) -> np.ndarray:
    """Opaque, with a transparent square (edit here) at top left."""
    mask = np.zeros((height, width, 4), np.uint8)
    mask[..., 3] = 255
    mask[:16, :16, 3] = 0
    return mask


def job(**fields) -> EditJob:
    fields.setdefault("prompt", "a red door")
    fields.setdefault("images", [input_image(gradient())])
    return EditJob(**fields)


def request_for(operation: str, **fields):
    return build_request(job(**fields), OPERATIONS[operation])


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    with running(FakeStability(png(RESULT))) as fake:
        yield fake


def stability(fake: FakeStability, operation: str = "inpaint", **config) -> StabilityEditModel:
    config = {"operation": operation, "api_base": f"{fake.base}/v2beta", "timeout": 5, **config}
    return StabilityEditModel(f"stability-{operation}", config=config)


async def edit(model: StabilityEditModel, edit_job: EditJob):
    try:
        return await model.edit(edit_job)
    finally:
        await model.aclose()


# -- the request built ---------------------------------------------------------------------

def test_inpaint_request_carries_fields_image_and_translated_mask():
    image = input_image(gradient())
    options = StabilityOptions(negative_prompt="blurry", grow_mask=10, style_preset="photographic")
    method, path, kwargs = request_for("inpaint", images=[image], seed=5, output_format="webp",
                                       mask=input_image(openai_mask(), param="mask"), options=options)
    assert (method, path) == ("POST", "/stable-image/edit/inpaint")
    assert kwargs["data"] == {"prompt": "a red door", "seed": "5", "output_format": "webp",
                              "negative_prompt": "blurry", "grow_mask": "10",
                              "style_preset": "photographic"}
    assert kwargs["files"]["image"] == ("image.png", image.read_bytes(), "image/png")
    with Image.open(io.BytesIO(kwargs["files"]["mask"][1])) as sent:
        assert sent.mode == "L"  # greyscale: white = edit
        mask = np.asarray(sent)
    assert (mask[:16, :16] == 255).all() and (mask[16:, :] == 0).all() and (mask[:, 16:] == 0).all()


def test_mask_without_alpha_is_already_white_means_edit():
    white_square = np.zeros((48, 64, 3), np.uint8)
    white_square[:8, :8] = 255
    _, _, kwargs = request_for("inpaint", mask=input_image(white_square, param="mask"))
    mask = decode(kwargs["files"]["mask"][1])
    assert (mask[:8, :8] == 255).all() and mask[8:].max() == 0


def test_image_stability_cannot_read_is_uploaded_as_png():
    _, _, kwargs = request_for("inpaint", images=[input_image(gradient(), "BMP")])
    filename, data, content_type = kwargs["files"]["image"]
    assert (filename, content_type) == ("image.png", "image/png")
    assert np.array_equal(decode(data), gradient())


def test_erase_needs_a_mask():
    with pytest.raises(InvalidRequestError) as caught:
        request_for("erase")
    assert caught.value.param == "mask"


def test_erase_sends_no_prompt_and_reports_it_dropped():
    erase = job(mask=input_image(openai_mask(), param="mask"), quality="high")
    _, _, kwargs = build_request(erase, OPERATIONS["erase"])
    assert "prompt" not in kwargs["data"]
    assert dropped_params(erase, OPERATIONS["erase"]) == ["prompt", "quality"]


@pytest.mark.parametrize(("operation", "option"), [("search-and-replace", "search_prompt"),
                                                   ("search-and-recolor", "select_prompt")])
def test_search_operations_need_and_forward_their_search_field(operation, option):
    with pytest.raises(InvalidRequestError) as caught:
        request_for(operation)
    assert caught.value.param == option
    _, path, kwargs = request_for(operation, options=StabilityOptions(**{option: "the door"}))
    assert path == f"/stable-image/edit/{operation}"
    assert kwargs["data"][option] == "the door" and kwargs["data"]["prompt"] == "a red door"


def test_option_the_operation_does_not_read_is_400_naming_it():
    with pytest.raises(InvalidRequestError) as caught:
        request_for("erase", mask=input_image(openai_mask(), param="mask"),
                    options=StabilityOptions(negative_prompt="blurry"))
    assert caught.value.param == "negative_prompt"


def test_outpaint_size_becomes_padding_on_each_side():
    _, _, kwargs = request_for("outpaint", size=(101, 60))
    data = kwargs["data"]
    assert (data["left"], data["right"], data["up"], data["down"]) == ("18", "19", "6", "6")


@pytest.mark.parametrize("size", [None, (64, 48), (60, 60)])
def test_outpaint_without_a_larger_size_is_400_naming_size(size):
    with pytest.raises(InvalidRequestError) as caught:
        request_for("outpaint", size=size)
    assert caught.value.param == "size"


def test_outpaint_takes_explicit_padding():
    _, _, kwargs = request_for("outpaint", options=StabilityOptions(left=100, creativity=0.5))
    assert kwargs["data"]["left"] == "100" and kwargs["data"]["creativity"] == "0.5"


def test_size_other_than_the_images_is_400_for_inpaint():
    request_for("inpaint", size=(64, 48))  # the image's own size changes nothing
    with pytest.raises(InvalidRequestError) as caught:
        request_for("inpaint", size=(1024, 1024))
    assert caught.value.param == "size"


def test_remove_background_sends_image_and_format_only():
    removal = job(seed=3)
    _, _, kwargs = build_request(removal, OPERATIONS["remove-background"])
    assert kwargs["data"] == {"output_format": "png"}
    assert dropped_params(removal, OPERATIONS["remove-background"]) == ["prompt", "seed"]


@pytest.mark.parametrize(("operation", "background"), [("inpaint", "transparent"),
                                                       ("remove-background", "opaque")])
def test_background_the_operation_contradicts_is_400(operation, background):
    with pytest.raises(InvalidRequestError) as caught:
        request_for(operation, background=background)
    assert caught.value.param == "background"


@pytest.mark.parametrize(("seed", "n"), [(-1, 1), (-5, 10), (4_294_967_294, 2)])
def test_seed_outside_stabilitys_range_is_400(seed, n):
    with pytest.raises(InvalidRequestError) as caught:
        request_for("inpaint", seed=seed, n=n)
    assert caught.value.param == "seed"


@pytest.mark.parametrize(("operation", "mask", "formats"), [
    ("inpaint", True, ("png", "jpeg", "webp")), ("erase", True, ("png", "jpeg", "webp")),
    ("search-and-replace", False, ("png", "jpeg", "webp")),
    ("remove-background", False, ("png", "webp")), ("outpaint", False, ("png", "jpeg", "webp")),
])
def test_flags_follow_the_operation(operation, mask, formats):
    model = StabilityEditModel("s", config={"operation": operation})
    capabilities = model.capabilities()
    assert (capabilities.supports_mask, tuple(capabilities.output_formats)) == (mask, formats)
    assert capabilities.max_input_images == 1 and not capabilities.supports_generation


def test_unknown_operation_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="search-and-replace"):
        StabilityEditModel("s", config={"operation": "upscale"})


# -- calls through the network -------------------------------------------------------------

@pytest.mark.anyio
async def test_call_carries_bearer_key_and_accept_json(fake):
    result = await edit(stability(fake), job(seed=42))
    (received,) = fake.received
    assert received.path == "/v2beta/stable-image/edit/inpaint"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["accept"] == "application/json"
    assert received.headers["content-type"].startswith("multipart/form-data")
    assert received.fields == {"prompt": "a red door", "seed": "42", "output_format": "png"}
    assert received.files["image"].data == png(gradient())
    assert np.array_equal(decode(result.images[0].data), RESULT)
    assert result.images[0].content_type == "image/png"
    assert result.extra["seeds"] == [42]


@pytest.mark.anyio
async def test_n_images_are_n_calls_one_after_the_other(fake):
    fake.replies = [Reply(delay=0.05) for _ in range(3)]
    result = await edit(stability(fake), job(n=3, seed=10))
    assert len(result.images) == 3 and len(fake.received) == 3
    assert fake.most_in_flight == 1
    assert [r.fields["seed"] for r in fake.received] == ["10", "11", "12"]


@pytest.mark.anyio
async def test_remove_background_makes_one_call_for_n_equal_images(fake):
    result = await edit(stability(fake, "remove-background"), job(n=2))
    assert len(fake.received) == 1 and len(result.images) == 2
    assert result.images[0] is result.images[1]


@pytest.mark.anyio
async def test_rejection_carries_stabilitys_message(fake):
    fake.replies = [Reply(status=400, body={"id": "e1", "name": "bad_request",
                                            "errors": ["image: dimensions must be at least 64x64"]})]
    with pytest.raises(InvalidRequestError) as caught:
        await edit(stability(fake), job())
    assert caught.value.status == 400
    assert "image: dimensions must be at least 64x64" in caught.value.message


@pytest.mark.anyio
async def test_answer_without_an_image_is_502(fake):
    fake.replies = [Reply(body={"finish_reason": "SUCCESS", "seed": 1})]
    with pytest.raises(UpstreamError):
        await edit(stability(fake), job())


# -- through retouch's public API ----------------------------------------------------------

@pytest.fixture
def retouch_url(fake, make_settings, tmp_path, monkeypatch):
    common = {"provider": "stability", "api_base": f"{fake.base}/v2beta", "timeout": 0.3}
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [
        {"id": "sd-inpaint", "operation": "inpaint", **common},
        {"id": "sd-replace", "operation": "search-and-replace", **common},
    ]}))
    with running_retouch(make_settings(models_file=models)) as url:
        yield url


def post_edit(url: str, **data) -> httpx.Response:
    data = {"model": "sd-inpaint", "prompt": "a red door", **data}
    return httpx.post(f"{url}/v1/images/edits", data=data, timeout=10,
                      files=[("image", ("a.png", png(gradient()), "image/png"))])


def test_openai_client_inpaint_with_mask_returns_the_fakes_pixels(fake, retouch_url):
    client = openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0)
    result = client.images.edit(model="sd-inpaint", prompt="a red door", response_format="b64_json",
                                image=("a.png", png(gradient()), "image/png"),
                                mask=("m.png", png(openai_mask()), "image/png"))
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    (received,) = fake.received
    assert received.fields["prompt"] == "a red door"
    mask = decode(received.files["mask"].data)
    assert (mask[:16, :16] == 255).all() and mask[16:].max() == 0


def test_openai_client_extra_body_reaches_search_and_replace(fake, retouch_url):
    client = openai.OpenAI(base_url=f"{retouch_url}/v1", api_key="unused", max_retries=0)
    client.images.edit(model="sd-replace", prompt="a red door", image=("a.png", png(gradient()), "image/png"),
                       response_format="b64_json", extra_body={"search_prompt": "the door", "grow_mask": 5})
    (received,) = fake.received
    assert received.path == "/v2beta/stable-image/edit/search-and-replace"
    assert received.fields["search_prompt"] == "the door" and received.fields["grow_mask"] == "5"


def test_mask_to_an_operation_without_masks_is_400(fake, retouch_url):
    response = httpx.post(f"{retouch_url}/v1/images/edits", timeout=10,
                          data={"model": "sd-replace", "prompt": "x", "search_prompt": "y"},
                          files=[("image", ("a.png", png(gradient()), "image/png")),
                                 ("mask", ("m.png", png(openai_mask()), "image/png"))])
    assert response.status_code == 400 and response.json()["error"]["param"] == "mask"
    assert fake.received == []


def test_filtered_result_is_400_content_policy_violation(fake, retouch_url):
    fake.replies = [Reply(body={"image": base64.b64encode(png(solid((0, 0, 0)))).decode(),
                                "finish_reason": "CONTENT_FILTERED", "seed": 1})]
    response = post_edit(retouch_url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"


