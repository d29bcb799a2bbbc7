"""The provider contract's harness: every fake upstream behind one small interface.

An ``Upstream`` says how to start one provider's fake, the ``models.yaml`` entry that
points retouch at it, the variable that holds its key, and maps the contract's uniform
knobs onto that fake's own::

    reject_key()                     the key is refused (401, or what the provider answers)
    rate_limit(retry_after, times)   429 with Retry-After, ``times`` submissions (None: all)
    fail(status, times)              a server error on ``times`` submissions (None: all)
    block_content(reason)            a content block whose text is ``reason``
    slow(seconds)                    the submission is answered ``seconds`` late
    hold()                           the job stays queued (providers with a cancel call)

and reads its records back the same way: ``submissions()``, ``received_images()``,
``prompts()``, ``polls()``, ``cancels()`` (None where the provider has no cancel) and
``sent_references()`` (the image strings in the request bodies of providers that take
images by URL; None for those that only take them inline).
Knobs hold until ``reset()``; what a fake draws is set with ``answer(image)``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from tests.images import gradient, png
from tests.providers.fake_inputs import is_image_ref
from tests.providers import (
    fake_bfl,
    fake_fal,
    fake_gemini,
    fake_openai,
    fake_replicate,
    fake_stability,
)

RESULT = gradient(40, 30)[::-1].copy()  # what every fake draws unless told otherwise
UPSTREAM_MESSAGE = "upstream trouble"  # what every fake says with a 429 or a 5xx
PRICE_PER_IMAGE = 0.04
TIMEOUT_S = 5.0
IMPATIENT_TIMEOUT_S = 0.5  # the ".../impatient" entries; slow() answers later than this
# Retries of an entry, fast enough for tests (the defaults wait 0.5 s, growing to 8 s).
RETRY_KNOBS = {"retry_base_delay_s": 0.01, "retry_max_delay_s": 0.05}


class Upstream(ABC):
    """One provider's fake, seen through the knobs and records every contract case uses."""

    name = ""
    key_env = ""
    key = ""
    has_cancel = False

    @property
    def model_id(self) -> str:
        return f"contract/{self.name}"

    @abstractmethod
    def running(self) -> contextlib.AbstractContextManager[Any]:
        """Serve the fake; ``entry()`` can name its URL once this is entered."""

    @abstractmethod
    def entry(self) -> dict[str, Any]:
        """The provider's part of the models.yaml entry: provider, model, api_base, …"""

    def entries(self) -> list[dict[str, Any]]:
        """Two public ids on this fake: the patient one, and one that times out early."""
        common = {**self.entry(), "price_per_image": PRICE_PER_IMAGE, **RETRY_KNOBS}
        return [{"id": self.model_id, **common, "timeout": TIMEOUT_S},
                {"id": f"{self.model_id}/impatient", **common, "timeout": IMPATIENT_TIMEOUT_S}]

    @abstractmethod
    def reset(self) -> None: ...
    @abstractmethod
    def answer(self, image: bytes) -> None: ...
    @abstractmethod
    def reject_key(self) -> None: ...
    @abstractmethod
    def rate_limit(self, retry_after: int, times: int | None) -> None: ...
    @abstractmethod
    def fail(self, status: int = 503, times: int | None = 1) -> None: ...
    @abstractmethod
    def block_content(self, reason: str) -> None: ...
    @abstractmethod
    def slow(self, seconds: float) -> None: ...
    @abstractmethod
    def submissions(self) -> int: ...
    @abstractmethod
    def received_images(self) -> list[bytes]: ...
    @abstractmethod
    def prompts(self) -> list[str]: ...

    def hold(self) -> None:
        raise NotImplementedError(f"{self.name} has no cancel call")

    def polls(self) -> int:
        return 0

    def sent_references(self) -> list[str] | None:
        return None

    def cancels(self) -> list[str] | None:
        return None


# -- OpenAI-style: openai, and openai_compatible in both styles --------------------------


class OpenAIStyleUpstream(Upstream):
    def __init__(self, name: str, entry: dict[str, Any], key_env: str, *, siraya: bool = False) -> None:
        self.name, self.key_env, self.siraya = name, key_env, siraya
        self.key = f"sk-{name}-secret-0123456789"
        self._entry = entry
        dialect = {"auth": "plain", "edits": "json"} if siraya else {}
        self.fake = fake_openai.FakeOpenAI(key=self.key, **dialect)

    def running(self) -> contextlib.AbstractContextManager[Any]:
        return fake_openai.running_fake(self.fake)

    def entry(self) -> dict[str, Any]:
        return {**self._entry, "api_base": f"{self.fake.url}/v1"}

    def reset(self) -> None:
        self.fake.reset()
        self.fake.key = self.key

    def answer(self, image: bytes) -> None:
        self.fake.reply = fake_openai.n_images_reply(image, siraya=self.siraya)

    def reject_key(self) -> None:
        self.fake.key = "sk-the-key-the-upstream-wants"  # it answers 401, echoing what it got

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        self._script(fake_openai.error_reply(429, UPSTREAM_MESSAGE, type="rate_limit_error",
                                             headers={"retry-after": str(retry_after)}), times)

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self._script(fake_openai.error_reply(status, UPSTREAM_MESSAGE, type="server_error"), times)

    def block_content(self, reason: str) -> None:
        if self.siraya:
            self._script(fake_openai.error_reply(422, reason, type="content_policy_violation", code=422), None)
        else:
            self._script(fake_openai.error_reply(400, reason, type="image_generation_user_error",
                                                 code="moderation_blocked"), None)

    def slow(self, seconds: float) -> None:
        self.fake.delay = seconds

    def submissions(self) -> int:
        return self.fake.submissions

    def received_images(self) -> list[bytes]:
        return [image for received in self.fake.received for image in received.images]

    def prompts(self) -> list[str]:
        return [str(r.json["prompt"] if r.json is not None else r.value("prompt")) for r in self.fake.received]

    def sent_references(self) -> list[str] | None:
        if not self.siraya:
            return None
        return [ref for received in self.fake.received for ref in references_in(received.json)]

    def _script(self, reply: fake_openai.Reply, times: int | None) -> None:
        if times is None:
            self.fake.reply = reply
        else:
            self.fake.replies = [reply] * times


# -- queue providers: fal, Replicate, BFL ------------------------------------------------


class QueueUpstream(Upstream):
    """A provider whose fake records ``submissions``, each with its JSON body (in
    ``body_field``) and the ``images`` it read from it."""

    body_field = "body"

    def submissions(self) -> int:
        return len(self.fake.submissions)

    def received_images(self) -> list[bytes]:
        return [image for submission in self.fake.submissions for image in submission.images]

    def prompts(self) -> list[str]:
        return [self._body(submission)["prompt"] for submission in self.fake.submissions]

    def sent_references(self) -> list[str] | None:
        # Inline images (data URLs; BFL's bare base64 is none) and links alike.
        return [ref for submission in self.fake.submissions
                for ref in references_in(self._body(submission))]

    def _body(self, submission: Any) -> dict[str, Any]:
        return getattr(submission, self.body_field)


class FalUpstream(QueueUpstream):
    name, key_env, key, has_cancel = "fal", "FAL_KEY", "fal-key-contract-secret-5c1d", True

    def __init__(self) -> None:
        self.fake = fake_fal.FakeFal()

    def running(self) -> contextlib.AbstractContextManager[Any]:
        return fake_fal.running_fake_fal(self.fake)

    def entry(self) -> dict[str, Any]:
        return {"provider": "fal", "model": "fal-ai/flux-pro/kontext", "api_base": self.fake.base_url,
                "poll_interval": 0.01, "max_poll_interval": 0.02}

    def reset(self) -> None:
        self.fake.reset()

    def answer(self, image: bytes) -> None:
        self.fake.result_png = image

    def reject_key(self) -> None:
        self.fake.submit_error = (401, {"detail": f"Invalid key: {self.key}"}, {})

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        self.fake.submit_error = (429, {"detail": UPSTREAM_MESSAGE},
                                  {"Retry-After": str(retry_after)})
        self.fake.submit_failures = times

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self.fake.submit_error, self.fake.submit_failures = (status, {"detail": UPSTREAM_MESSAGE}, {}), times

    def block_content(self, reason: str) -> None:
        self.fake.result_error = (422, {"detail": [{"loc": ["body", "prompt"], "msg": reason,
                                                    "type": "content_policy_violation"}]})

    def slow(self, seconds: float) -> None:
        self.fake.submit_delay = seconds

    def hold(self) -> None:
        self.fake.states = ["IN_QUEUE"]





    def polls(self) -> int:
        return len(self.fake.status_queries)

    def cancels(self) -> list[str] | None:
        return list(self.fake.cancels)


class ReplicateUpstream(QueueUpstream):
    name, key_env, key, has_cancel = "replicate", "REPLICATE_API_TOKEN", fake_replicate.TOKEN, True

    body_field = "input"
    fake: fake_replicate.FakeReplicate

    @contextlib.contextmanager
    def running(self) -> Iterator[Any]:
        with fake_replicate.running_fake_replicate() as self.fake:
            yield self.fake

    def entry(self) -> dict[str, Any]:
        return {"provider": "replicate", "model": "black-forest-labs/flux-kontext-pro",
                "image_field": "input_image", "api_base": f"{self.fake.base_url}/v1", "poll_interval": 0.005}

    def reset(self) -> None:
        self.fake.reset()

    def answer(self, image: bytes) -> None:
        self.fake.script.images = [image]

    def reject_key(self) -> None:
        self.fake.script.token = "r8_the_token_the_upstream_wants"

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        script = self.fake.script
        script.submit_status, script.submit_headers = 429, {"Retry-After": str(retry_after)}
        script.submit_failures = times

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self.fake.script.submit_status, self.fake.script.submit_failures = status, times

    def block_content(self, reason: str) -> None:
        self.fake.script.status = "failed"
        self.fake.script.error = f"The input or output was flagged as sensitive: {reason} (E005)"

    def slow(self, seconds: float) -> None:
        self.fake.script.submit_delay = seconds

    def hold(self) -> None:
        self.fake.script.polls_until_done = 10**6





    def polls(self) -> int:
        return len(self.fake.polls)

    def cancels(self) -> list[str] | None:
        return list(self.fake.cancels)


class BflUpstream(QueueUpstream):
    name, key_env, key = "bfl", "BFL_API_KEY", fake_bfl.KEY

    fake: fake_bfl.FakeBfl

    @contextlib.contextmanager
    def running(self) -> Iterator[Any]:
        with fake_bfl.running_fake_bfl() as self.fake:
            yield self.fake

    def entry(self) -> dict[str, Any]:
        return {"provider": "bfl", "model": "flux-kontext-pro", "api_base": f"{self.fake.base_url}/v1",
                "poll_interval": 0.005}

    def reset(self) -> None:
        self.fake.reset()

    def answer(self, image: bytes) -> None:
        self.fake.script.images = [image]

    def reject_key(self) -> None:
        self.fake.script.key = "bfl_the_key_the_upstream_wants"  # BFL answers a wrong key with 403

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        script = self.fake.script
        script.submit_status, script.submit_headers = 429, {"Retry-After": str(retry_after)}
        script.submit_failures = times

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self.fake.script.submit_status, self.fake.script.submit_failures = status, times

    def block_content(self, reason: str) -> None:
        self.fake.script.status = "Request Moderated"
        self.fake.script.details = {"Moderation Reasons": [reason]}

    def slow(self, seconds: float) -> None:
        self.fake.script.submit_delay = seconds






# -- synchronous JSON/multipart providers: Gemini, Stability ------------------------------


class ScriptedUpstream(Upstream):
    """A fake answering ``replies`` in order, then ``default`` (Gemini's, Stability's)."""

    fake: Any
    Reply: ClassVar[type]

    def reset(self) -> None:
        self.fake.reset()

    def answer(self, image: bytes) -> None:
        self.fake.image = image

    def submissions(self) -> int:
        return len(self.fake.received)

    def slow(self, seconds: float) -> None:
        self.fake.default = self.Reply(delay=seconds)

    def script(self, reply: Any, times: int | None) -> None:
        if times is None:
            self.fake.default = reply
        else:
            self.fake.replies = [reply] * times


class GeminiUpstream(ScriptedUpstream):
    name, key_env, key = "gemini", "GEMINI_API_KEY", "AIza-contract-secret-0123456789"
    Reply = fake_gemini.Reply

    def __init__(self) -> None:
        self.fake = fake_gemini.FakeGemini(png(RESULT))

    def running(self) -> contextlib.AbstractContextManager[Any]:
        return fake_gemini.running(self.fake)

    def entry(self) -> dict[str, Any]:
        return {"provider": "gemini", "model": "gemini-2.5-flash-image", "api_base": f"{self.fake.base}/v1beta"}

    def reject_key(self) -> None:  # as Google answers: 400, and the key in its debug details
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
                   {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": f"Invalid API key: {self.key}"}]
        self.script(self.Reply(status=400, body={"error": {
            "code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT", "details": details}}), None)

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        self.script(self.Reply(status=429, headers={"retry-after": str(retry_after)}, body={"error": {
            "code": 429, "message": UPSTREAM_MESSAGE, "status": "RESOURCE_EXHAUSTED"}}), times)

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self.script(self.Reply(status=status, body={"error": {
            "code": status, "message": UPSTREAM_MESSAGE, "status": "UNAVAILABLE"}}), times)

    def block_content(self, reason: str) -> None:  # as Gemini answers an image it withholds
        self.script(self.Reply(body={"candidates": [{
            "content": {"role": "model"}, "finishReason": "IMAGE_PROHIBITED_CONTENT",
            "finishMessage": reason}]}), None)

    def received_images(self) -> list[bytes]:
        return [image for received in self.fake.received for image in received.images]

    def prompts(self) -> list[str]:
        return [received.parts[0]["text"] for received in self.fake.received]


class StabilityUpstream(ScriptedUpstream):
    name, key_env, key = "stability", "STABILITY_API_KEY", "sk-stability-contract-secret-0123"
    Reply = fake_stability.Reply

    def __init__(self) -> None:
        self.fake = fake_stability.FakeStability(png(RESULT))

    def running(self) -> contextlib.AbstractContextManager[Any]:
        return fake_stability.running(self.fake)

    def entry(self) -> dict[str, Any]:
        return {"provider": "stability", "operation": "inpaint", "api_base": f"{self.fake.base}/v2beta"}

    def reject_key(self) -> None:
        self.script(self.Reply(status=401, body={"name": "unauthorized",
                                                 "errors": [f"invalid key {self.key}"]}), None)

    def rate_limit(self, retry_after: int, times: int | None) -> None:
        self.script(self.Reply(status=429, headers={"retry-after": str(retry_after)}, body={
            "name": "rate_limit_exceeded", "errors": [UPSTREAM_MESSAGE]}), times)

    def fail(self, status: int = 503, times: int | None = 1) -> None:
        self.script(self.Reply(status=status, body={"name": "internal_error", "errors": [UPSTREAM_MESSAGE]}),
                    times)

    def block_content(self, reason: str) -> None:  # Stability sends moderation as a 403
        self.script(self.Reply(status=403, body={"name": "content_moderation", "errors": [reason]}), None)

    def received_images(self) -> list[bytes]:
        return [received.files["image"].data for received in self.fake.received]

    def prompts(self) -> list[str]:
        return [received.fields["prompt"] for received in self.fake.received]


def all_upstreams() -> list[Upstream]:
    """Every adapter, each on a fresh fake."""
    return [
        OpenAIStyleUpstream("openai", {"provider": "openai", "model": "gpt-image-1", "max_input_images": 4},
                            "OPENAI_API_KEY"),
        OpenAIStyleUpstream("openai_compatible", {
            "provider": "openai_compatible", "model": "Qwen-Image-Edit-2511", "max_input_images": 4,
            "api_key_env": "CONTRACT_COMPATIBLE_KEY"}, "CONTRACT_COMPATIBLE_KEY"),
        OpenAIStyleUpstream("siraya", {
            "provider": "openai_compatible", "style": "siraya", "model": "jia-lab/dreamomni2-image-to-image",
            "api_key_env": "CONTRACT_SIRAYA_KEY"}, "CONTRACT_SIRAYA_KEY", siraya=True),
        FalUpstream(), ReplicateUpstream(), BflUpstream(), GeminiUpstream(), StabilityUpstream(),
    ]


def references_in(body: Any) -> list[str]:
    """Every image reference (data: or http(s) URL) in a JSON body, in order."""
    if isinstance(body, dict):
        return [ref for value in body.values() for ref in references_in(value)]
    if isinstance(body, list):
        return [ref for value in body for ref in references_in(value)]
    return [body] if is_image_ref(body) else []
