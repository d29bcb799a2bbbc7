"""``openai_compatible``: any upstream with an OpenAI-style images API — another retouch,
LiteLLM, vLLM-Omni, Siraya.

Declared in ``models.yaml``::

    - id: upstream-edit
      provider: openai_compatible
      api_base: https://images.example.com/v1   # required
      model: their-model-name                   # the upstream's model id
      api_key_env: UPSTREAM_API_KEY             # optional: no key, no Authorization header
      style: openai                             # or siraya
      auth_header_style: bearer                 # or plain (the bare key); default per style
      result_hosts: [cdn.example.com]           # result URLs allowed besides api_base's host

Two wire styles:

- ``openai`` (default): edits as multipart ``POST {api_base}/images/edits`` — ``image[]``
  parts in order, ``mask``, ``prompt``, ``model``, ``n``, ``size``, ``quality``,
  ``background``, ``output_format``, ``output_compression``, ``input_fidelity``, ``user``,
  ``seed`` and the model's own options as text parts, and ``response_format=b64_json``;
  generations as JSON. ``Authorization: Bearer <key>``.
- ``siraya``: edits as JSON ``{model, prompt, image_urls: [data URLs], n, output_format:
  "b64_json", size, seed, …}`` where ``output_format`` is the *delivery*; generations
  ``{model, prompt, n, output_format: "b64_json"}``; ``Authorization: <key>``. No mask.
  The requested encoding cannot be sent: retouch transcodes the answer.

Both answer ``{created, data: [{url, b64_json, revised_prompt}]}`` (Siraya writes absent
fields as empty strings); ``url`` results are downloaded through the SSRF-safe fetcher
from the ``api_base`` host or ``result_hosts`` only; ``revised_prompt`` is carried through.
A content block is an error whose code or type is ``content_policy_violation`` (Siraya,
retouch), ``moderation_blocked`` or ``image_generation_user_error`` (OpenAI).
"""

from __future__ import annotations

from typing import Any, ClassVar

import anyio
import httpx
from pydantic import BaseModel, ConfigDict

from retouch.errors import RetouchError, UpstreamError
from retouch.providers.base import Availability, EditJob
from retouch.providers.openai import (
    Family,
    OpenAIEditModel,
    UpstreamRequest,
    build_edit_request,
    build_generation_request,
    check_job,
    job_fields,
    options_of,
)
from retouch.providers.transport import data_url, portable

OPENAI_STYLE = Family(
    "openai", "image[]", 16,
    frozenset({"size", "quality", "background", "output_format", "output_compression",
               "input_fidelity", "user", "seed"}),
    response_format="b64_json",
)
SIRAYA_STYLE = Family("siraya", "image_urls", 10, frozenset({"size", "seed"}))
STYLES = {family.name: family for family in (OPENAI_STYLE, SIRAYA_STYLE)}
DEFAULT_AUTH = {"openai": "bearer", "siraya": "plain"}


# -- translation: Siraya's JSON form --------------------------------------------------


def build_siraya_request(job: EditJob, model: str, options: dict[str, Any],
                         references: list[str] | None = None) -> UpstreamRequest:
    """JSON ``POST /images/edits`` (or ``/images/generations`` without images).
    ``references`` are the images as URLs; without them, data URLs of the images."""
    check_job(job, SIRAYA_STYLE)
    fields, dropped = job_fields(job, SIRAYA_STYLE, options)
    body: dict[str, Any] = {"model": model, "prompt": job.prompt}
    if job.images:
        body["image_urls"] = references if references is not None else [
            data_url(portable(image)) for image in job.images]
    # Siraya's output_format is the delivery, set last so that nothing overrides it.
    body |= {"n": job.n, **fields, "output_format": "b64_json"}
    path = "/images/edits" if job.images else "/images/generations"
    return UpstreamRequest("POST", path, {"json": body}, dropped)


# -- the backend ----------------------------------------------------------------------


class OpenAICompatibleOptions(BaseModel):
    """Fields diffusion servers behind OpenAI-style APIs commonly take; sent as given."""

    model_config = ConfigDict(extra="forbid")

    negative_prompt: str | None = None
    guidance_scale: float | None = None
    true_cfg_scale: float | None = None
    num_inference_steps: int | None = None
    aspect_ratio: str | None = None


class OpenAICompatibleEditModel(OpenAIEditModel):
    """A model served by an OpenAI-compatible upstream, in its ``openai`` or ``siraya`` style."""

    provider: ClassVar[str] = "openai_compatible"
    Options = OpenAICompatibleOptions
    default_api_base: ClassVar[str] = ""
    default_api_key_env: ClassVar[str] = ""
    result_hosts: ClassVar[frozenset[str]] = frozenset()
    content_block_codes: ClassVar[frozenset[str]] = frozenset(
        {"content_policy_violation", "moderation_blocked", "image_generation_user_error"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auth_header_style = str(self.config.get("auth_header_style")
                                     or DEFAULT_AUTH[self.family.name])
        if self.auth_header_style not in ("bearer", "plain"):
            raise ValueError(f"{self.id}: auth_header_style must be bearer or plain, "
                             f"not {self.auth_header_style!r}")
        # Where the upstream keeps results, beside its own host (see HostedEditModel).
        self.result_hosts = frozenset(str(h).lower() for h in self.config.get("result_hosts") or ())
        self.supports_mask = self.family is OPENAI_STYLE and bool(self.config.get("supports_mask", True))
        self.accepts_image_links = self.family is SIRAYA_STYLE  # image_urls: URLs or data URLs

    def choose_family(self) -> Family:
        style = str(self.config.get("style") or "openai")
        if style not in STYLES:
            raise ValueError(f"{self.id}: style {style!r} is unknown; choose one of {', '.join(STYLES)}")
        return STYLES[style]

    def availability(self) -> Availability:
        if not self.api_base:
            return Availability(
                False, reason="api_base is not set",
                fix=f"add 'api_base: https://<upstream>/v1' to the {self.id} entry in your "
                    "models file (RETOUCH_MODELS_FILE)")
        if self.api_key_env:
            return super().availability()
        return Availability(True)  # a keyless upstream: a local server, another retouch

    async def prepare(self, job: EditJob) -> UpstreamRequest:
        if self.family is not SIRAYA_STYLE or not job.images:
            return self.build(job)
        check_job(job, SIRAYA_STYLE)  # before any image is lent
        payloads = await anyio.to_thread.run_sync(lambda: [portable(i) for i in job.images])
        references = await self.image_references(job, payloads)
        return build_siraya_request(job, self.upstream_model, options_of(job), references)

    def build(self, job: EditJob) -> UpstreamRequest:
        options = options_of(job)
        if self.family is SIRAYA_STYLE:
            return build_siraya_request(job, self.upstream_model, options)
        builder = build_edit_request if job.images else build_generation_request
        return builder(job, self.upstream_model, self.family, options)

    def auth_headers(self) -> dict[str, str]:
        key = self.api_key() if self.api_key_env else ""
        if not key:
            return {}
        return {"Authorization": f"Bearer {key}" if self.auth_header_style == "bearer" else key}

    def upstream_error(self, response: httpx.Response) -> RetouchError:
        if response.status_code in (401, 403) and not self.api_key_env:
            return UpstreamError(
                f"{self.provider} at {response.url.host} asks for a key (HTTP "
                f"{response.status_code}); set api_key_env in the {self.id} entry of your "
                "models file and put the key in that variable.", code="upstream_auth_failed")
        return super().upstream_error(response)
