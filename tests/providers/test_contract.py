"""The contract every hosted adapter keeps, checked through retouch's public HTTP API.

Each case runs against every provider's fake upstream (``contract.py``): the same
request, the same upstream behaviour, the same answer expected from retouch, whatever
protocol the provider speaks behind it. What is particular to one provider (how a
request is translated, its queue, its URL rules) stays in its own test file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import openai
import pytest
import yaml

from retouch.config import Settings
from tests.images import decode, gradient, png, solid
from tests.providers.contract import (
    PRICE_PER_IMAGE,
    RESULT,
    UPSTREAM_MESSAGE,
    Upstream,
    all_upstreams,
)
from tests.servers import running_retouch

UPSTREAMS = {upstream.name: upstream for upstream in all_upstreams()}
WITH_CANCEL = [name for name, upstream in UPSTREAMS.items() if upstream.has_cancel]
PROMPT = "make it look like dusk"
SOURCE = gradient()  # the image every case edits
SLOW_S = 2.0  # how late slow() answers: well past IMPATIENT_TIMEOUT_S


@contextlib.contextmanager
def retouch_in_front_of(upstreams: list[Upstream], folder: Path, *, lends_links: bool = False
                        ) -> Iterator[str]:
    """A retouch server whose models file names ``upstreams``, their keys in the environment."""
    (folder / "models.yaml").write_text(yaml.safe_dump(
        {"models": [entry for upstream in upstreams for entry in upstream.entries()]}))
    settings = Settings(_env_file=None, data_dir=folder / "var", models_file=folder / "models.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for upstream in upstreams:
            patch.setenv(upstream.key_env, upstream.key)
        with running_retouch(settings, lends_links=lends_links) as url:
            yield url


@pytest.fixture(scope="module")
def retouch_url(tmp_path_factory) -> Iterator[str]:
    """Every fake, and one retouch in front of them all, for the whole module."""
    with contextlib.ExitStack() as stack:
        for upstream in UPSTREAMS.values():
            stack.enter_context(upstream.running())
        yield stack.enter_context(retouch_in_front_of(list(UPSTREAMS.values()), tmp_path_factory.mktemp("contract")))


@pytest.fixture(scope="module")
def lending_retouch(retouch_url, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A second retouch in front of the same fakes, whose public URL is its own: it lends
    input images as signed links. Yields its URL and its lent-inputs folder."""
    folder = tmp_path_factory.mktemp("lending")
    with retouch_in_front_of(list(UPSTREAMS.values()), folder, lends_links=True) as url:
        yield url, folder / "var" / "files" / "inputs"


@pytest.fixture(params=list(UPSTREAMS))
def upstream(request, retouch_url) -> Upstream:
    chosen = UPSTREAMS[request.param]
    chosen.reset()
    chosen.answer(png(RESULT))
    return chosen


@pytest.fixture
def fresh_retouch(upstream, tmp_path) -> Iterator[str]:
    """A retouch of its own, for cases that leave the deployment resting after them."""
    with retouch_in_front_of([upstream], tmp_path) as url:
        yield url


def images_api(base_url: str) -> openai.resources.Images:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0).images


def upload(pixels: np.ndarray = SOURCE, name: str = "in.png") -> tuple[str, bytes, str]:
    return name, png(pixels), "image/png"


def edit(base_url: str, model: str, **fields):
    fields = {"image": upload(), "prompt": PROMPT, **fields}
    return images_api(base_url).edit(model=model, **fields)


def error_of(call: Callable[[], object]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


# -- 1, 2: the edit itself -------------------------------------------------------------------


def test_edit_returns_the_upstream_pixels_and_sends_the_image_and_prompt(upstream, retouch_url):
    drawn = solid((30, 160, 90), 40, 30)
    upstream.answer(png(drawn))
    result = edit(retouch_url, upstream.model_id, response_format="b64_json")
    assert len(result.data) == 1
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), drawn)
    assert upstream.submissions() == 1
    received = upstream.received_images()
    assert len(received) == 1 and np.array_equal(decode(received[0]), SOURCE)
    assert upstream.prompts() == [PROMPT]


def test_url_result_is_served_by_retouch_not_the_upstream(upstream, retouch_url):
    result = edit(retouch_url, upstream.model_id, response_format="url")
    url = result.data[0].url
    assert url.startswith(f"{retouch_url}/files/")
    downloaded = httpx.get(url, timeout=10)
    assert downloaded.status_code == 200
    assert np.array_equal(decode(downloaded.content), RESULT)


def test_with_a_public_url_images_go_as_signed_links_that_end_with_the_job(upstream, lending_retouch):
    url, lent_folder = lending_retouch
    result = edit(url, upstream.model_id, response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    received = upstream.received_images()
    assert len(received) == 1 and np.array_equal(decode(received[0]), SOURCE)
    references = upstream.sent_references()
    if references is not None:  # a provider that fetches images by URL got a link to us
        assert len(references) == 1 and references[0].startswith(f"{url}/files/inputs/")
        assert "expires=" in references[0] and "signature=" in references[0]
        assert httpx.get(references[0], timeout=10).status_code == 404  # gone with the job
    assert not lent_folder.exists() or not any(lent_folder.iterdir())


# -- 3, 4: refusals --------------------------------------------------------------------------


def test_content_block_is_400_content_policy_violation_with_the_reason(upstream, retouch_url):
    reason = "depicts a trademarked character (policy 7b)"
    upstream.block_content(reason)
    error = error_of(lambda: edit(retouch_url, upstream.model_id))
    assert error.status_code == 400 and error.code == "content_policy_violation"
    assert reason in error.message


def test_rejected_key_is_502_naming_the_variable_never_the_key(upstream, retouch_url, caplog):
    caplog.set_level(logging.DEBUG)
    upstream.reject_key()
    error = error_of(lambda: edit(retouch_url, upstream.model_id))
    assert error.status_code == 502 and error.code == "upstream_auth_failed"
    assert upstream.key_env in error.message
    assert upstream.key not in error.response.text and upstream.key not in caplog.text
    assert upstream.key_env in caplog.text  # retouch's own log lines were captured
    # A refused key is not tried again (fakes that check keys turn it away unrecorded).
    assert upstream.submissions() <= 1


# -- 5, 6, 7: upstream trouble, retried only while the provider has not taken the job ----------


def test_rate_limit_every_time_is_429_with_retry_after_after_two_retries(upstream, fresh_retouch):
    upstream.rate_limit(retry_after=0, times=None)
    error = error_of(lambda: edit(fresh_retouch, upstream.model_id))
    assert error.status_code == 429 and error.response.headers["retry-after"] == "0"
    assert error.type == "rate_limit_error" and UPSTREAM_MESSAGE in error.message
    assert upstream.submissions() == 3


def test_rate_limit_asking_for_more_than_we_wait_is_passed_on_at_once(upstream, retouch_url):
    upstream.rate_limit(retry_after=7, times=None)  # the entries wait at most 0.05 s
    error = error_of(lambda: edit(retouch_url, upstream.model_id))
    assert error.status_code == 429 and error.response.headers["retry-after"] == "7"
    assert upstream.submissions() == 1


def test_rate_limit_once_is_retried_to_success(upstream, retouch_url):
    upstream.rate_limit(retry_after=0, times=1)
    result = edit(retouch_url, upstream.model_id, response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    assert upstream.submissions() == 2


def test_server_error_once_is_retried_to_success(upstream, retouch_url):
    upstream.fail(status=503, times=1)
    result = edit(retouch_url, upstream.model_id, response_format="b64_json")
    assert np.array_equal(decode(base64.b64decode(result.data[0].b64_json)), RESULT)
    assert upstream.submissions() == 2


def test_server_error_every_time_is_502_with_the_upstream_message(upstream, fresh_retouch):
    upstream.fail(status=500, times=None)
    error = error_of(lambda: edit(fresh_retouch, upstream.model_id))
    assert error.status_code == 502 and error.type == "upstream_error"
    assert UPSTREAM_MESSAGE in error.message
    assert upstream.submissions() == 3


def test_answer_slower_than_the_timeout_is_504_and_never_resubmitted(upstream, retouch_url):
    upstream.slow(SLOW_S)
    error = error_of(lambda: edit(retouch_url, f"{upstream.model_id}/impatient"))
    assert error.status_code == 504
    assert upstream.submissions() == 1


# -- 8, 9: requests refused before any upstream call ------------------------------------------


def test_unknown_parameter_is_400_naming_it(upstream, retouch_url):
    error = error_of(lambda: edit(retouch_url, upstream.model_id, extra_body={"frobnicate": 1}))
    assert error.status_code == 400 and error.body["param"] == "frobnicate"
    assert "frobnicate" in error.message
    assert upstream.submissions() == 0


def test_more_images_than_the_model_takes_is_400_naming_image(upstream, retouch_url):
    card = httpx.get(f"{retouch_url}/v1/models/{upstream.model_id}", timeout=10).json()
    most = card["capabilities"]["max_input_images"]
    images = [upload(solid((i, i, i)), f"{i}.png") for i in range(most + 1)]
    error = error_of(lambda: edit(retouch_url, upstream.model_id, image=images))
    assert error.status_code == 400 and error.body["param"] == "image"
    assert upstream.submissions() == 0


# -- 10: what the answer says about itself -----------------------------------------------------


def test_headers_name_the_public_model_and_the_cost_of_n_images(upstream, retouch_url):
    answer = httpx.post(f"{retouch_url}/v1/images/edits", timeout=30,
                        data={"model": upstream.model_id, "prompt": PROMPT, "n": "2"},
                        files={"image": upload()})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 2
    assert answer.headers["x-retouch-model"] == upstream.model_id
    assert float(answer.headers["x-retouch-cost-usd"]) == pytest.approx(PRICE_PER_IMAGE * 2)


# -- 11: a client that hangs up cancels the job upstream ---------------------------------------


@pytest.mark.parametrize("upstream", WITH_CANCEL, indirect=True)
def test_client_hanging_up_cancels_the_job_upstream(upstream, retouch_url):
    upstream.hold()
    image = "data:image/png;base64," + base64.b64encode(png(SOURCE)).decode()
    body = json.dumps({"model": upstream.model_id, "prompt": PROMPT,
                       "images": [{"image_url": image}]}).encode()
    address = urlparse(retouch_url)
    with socket.create_connection((address.hostname, address.port)) as conn:
        conn.sendall(b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert eventually(lambda: upstream.polls() > 0), "the job was never accepted and polled"
    assert eventually(lambda: len(upstream.cancels()) == 1), "hanging up did not cancel the job"
    assert upstream.submissions() == 1


def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
