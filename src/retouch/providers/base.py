"""The contract every backend implements: a small class, capability flags, one method.

To add a backend, subclass ``EditModel``, set the capability attributes, optionally
declare an ``Options`` pydantic model for backend-specific request fields, and
implement ``async def edit(job) -> EditResult``. The core checks capabilities *before*
calling ``edit``, so every backend rejects the same bad request the same way.
Register the class in ``registry.BUILTIN_PROVIDERS`` or through the
``retouch.providers`` entry-point group; declare its model ids in ``models.yaml``.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from retouch.errors import InvalidRequestError
from retouch.inputs import InputImage
from retouch.protocol import ModelCapabilities

if TYPE_CHECKING:
    from retouch.providers.transport import InputLinks


class NoOptions(BaseModel):
    """Default ``Options``: the backend takes no fields beyond the common ones."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class EditJob:
    """Everything a backend needs, already validated. ``images`` is empty for generations."""

    prompt: str
    images: list[InputImage]
    mask: InputImage | None = None
    n: int = 1
    size: tuple[int, int] | None = None
    seed: int | None = None
    background: str | None = None
    output_format: str = "png"
    output_compression: int | None = None
    quality: str | None = None
    input_fidelity: str | None = None
    user: str | None = None
    options: Any = None
    # Set when images may be lent to providers as signed links to our storage.
    links: InputLinks | None = None
    # Who asked (the key's label): backends that queue jobs take callers in turns.
    caller: str = ""
    # Streaming: how many partial images the client wants, and where to send them; a
    # backend that makes them calls ``partials(index, pixels)``, from any thread.
    partial_images: int = 0
    partials: Callable[[int, np.ndarray], None] | None = None


@dataclass
class OutputImage:
    """One result: decoded ``pixels`` (RGB/RGBA uint8), encoded ``data``, or encoded data
    still in the base64 an upstream sent (``b64_json``: passed on without decoding when
    the client asked for base64 in the same format)."""

    pixels: np.ndarray | None = None
    data: bytes | None = None
    content_type: str | None = None
    b64_json: str | None = None

    def encoded(self) -> bytes | None:
        """The encoded bytes, decoding the base64 form if that is what we hold."""
        if self.data is None and self.b64_json is not None:
            return base64.b64decode(self.b64_json)
        return self.data


@dataclass
class EditResult:
    images: list[OutputImage]
    revised_prompt: str = ""
    usage: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    """Whether a model can serve now; when not, why and how to fix it."""

    available: bool
    reason: str | None = None
    fix: str | None = None


AVAILABLE = Availability(True)


class EditModel(ABC):
    """One public model id served by one backend."""

    provider: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    # Capability flags: override per backend (or per model from models.yaml).
    max_input_images: int = 1
    min_input_images: int = 1
    supports_mask: bool = False
    supports_generation: bool = False
    supports_edits: bool = True
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    max_n: int = 10
    deterministic: bool = False
    # US dollars per output image, for x-retouch-cost-usd; models.yaml may set it per model.
    default_price_per_image: ClassVar[float | None] = None
    # Request fields this backend does not use; the core logs them instead of failing.
    ignored_params: ClassVar[frozenset[str]] = frozenset()
    # Shown in the models directory: the weights' licence, when it matters.
    license: str | None = None

    def __init__(self, id: str, *, aliases: list[str] | None = None, description: str = "",
                 owned_by: str = "retouch", config: dict | None = None) -> None:
        self.id = id
        self.aliases = list(aliases or [])
        self.description = description
        self.owned_by = owned_by
        self.config = dict(config or {})
        price = self.config.get("price_per_image", self.default_price_per_image)
        self.price_per_image: float | None = None if price is None else float(price)

    def availability(self) -> Availability:
        """Override when the backend needs keys, extras or devices."""
        return AVAILABLE

    def parse_options(self, fields: dict[str, Any]) -> BaseModel:
        """Validate backend-specific request fields; unknown ones are a 400 naming them."""
        try:
            return self.Options.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else None
            if first["type"] != "extra_forbidden":  # a known field with a value it cannot take
                raise InvalidRequestError(f"{name}={first.get('input')!r} is not valid for {self.id}: "
                                          f"{first['msg']}.", param=name, code="invalid_value") from exc
            known = ", ".join(self.Options.model_fields) or "none"
            raise InvalidRequestError(
                f"{name!r} is not a parameter {self.id} accepts ({first['msg']}); "
                f"its own parameters: {known}.",
                param=name,
                code="unknown_parameter",
            ) from exc

    def capabilities(self) -> ModelCapabilities:
        return ModelCapabilities(
            max_input_images=self.max_input_images,
            min_input_images=self.min_input_images,
            supports_mask=self.supports_mask,
            supports_generation=self.supports_generation,
            supports_edits=self.supports_edits,
            output_formats=list(self.output_formats),
            max_n=self.max_n,
            deterministic=self.deterministic,
        )

    async def aclose(self) -> None:
        """Release connections and the like at shutdown; most backends hold none."""

    @abstractmethod
    async def edit(self, job: EditJob) -> EditResult:
        """Carry out ``job``. Return ``job.n`` images; raise ``RetouchError`` subclasses
        (``UnsupportedInstructionError``, ``UpstreamError``, …) for failures."""
