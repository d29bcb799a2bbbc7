"""Wire shapes, named and ordered like OpenAI's Images API reference, Siraya fields beside.

Requests arrive as JSON or multipart (see ``api/images.py``); both become ``ImageParams``
plus a list of image sources. Fields no model in retouch knows stay in
``ImageParams.model_extra`` and travel to the backend as options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DELIVERIES = ("url", "b64_json")
ENCODINGS = ("png", "jpeg", "webp")
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×X]\s*(\d{1,5})\s*$")


class ImageParams(BaseModel):
    """Scalar fields of an edit or generation request, validated and normalised.

    ``output_format`` means two things in the wild (see API-NOTES): ``url``/``b64_json``
    is Siraya's delivery, ``png``/``jpeg``/``webp`` is OpenAI's encoding. After
    validation ``response_format`` holds the delivery and ``output_format`` the encoding.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    model: str | None = None
    prompt: str = ""
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None
    quality: Literal["auto", "low", "medium", "high", "standard", "hd"] | None = None
    background: Literal["auto", "transparent", "opaque"] | None = None
    output_format: str | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    response_format: Literal["url", "b64_json"] | None = None
    input_fidelity: Literal["low", "high"] | None = None
    stream: bool = False
    partial_images: int | None = Field(default=None, ge=0, le=3)
    seed: int | None = None
    user: str | None = None

    @field_validator("output_format")
    @classmethod
    def _known_output_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        value = "jpeg" if value == "jpg" else value
        if value not in DELIVERIES + ENCODINGS:
            raise ValueError(
                f"must be one of {', '.join(DELIVERIES + ENCODINGS)} "
                "(url/b64_json choose the delivery, png/jpeg/webp the encoding)"
            )
        return value

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is None or value.lower() == "auto":
            return None if value is None else "auto"
        match = _SIZE.match(value)
        if not match or min(int(match[1]), int(match[2])) < 1:
            raise ValueError("must be 'auto' or WIDTHxHEIGHT in pixels, e.g. 1024x1024")
        return f"{int(match[1])}x{int(match[2])}"

    @model_validator(mode="after")
    def _split_output_format(self) -> ImageParams:
        if self.output_format in DELIVERIES:
            if self.response_format not in (None, self.output_format):
                raise ValueError(
                    f"output_format={self.output_format!r} contradicts "
                    f"response_format={self.response_format!r}; send one delivery"
                )
            self.response_format = self.output_format  # type: ignore[assignment]
            self.output_format = None
        return self

    @property
    def delivery(self) -> str:
        return self.response_format or "url"

    @property
    def encoding(self) -> str:
        return self.output_format or "png"

    @property
    def size_wh(self) -> tuple[int, int] | None:
        if not self.size or self.size == "auto":
            return None
        width, height = self.size.split("x")
        return int(width), int(height)

    @property
    def options(self) -> dict:
        """Fields retouch's core does not know: the backend validates them."""
        return dict(self.model_extra or {})


@dataclass
class UploadedImage:
    """A file part of a multipart request (spooled to disk when large)."""

    file: BinaryIO
    filename: str | None
    param: str


@dataclass
class ImageUrl:
    """An ``http(s)://`` or ``data:`` URL naming an input image."""

    url: str
    param: str


ImageSource = UploadedImage | ImageUrl


@dataclass
class EditRequest:
    """A parsed edit: scalars plus image sources in order (the first is edited)."""

    params: ImageParams
    images: list[ImageSource] = field(default_factory=list)
    mask: ImageSource | None = None


class ImageData(BaseModel):
    """One output image. Absent fields are empty strings, as Siraya sends them."""

    url: str = ""
    b64_json: str = ""
    revised_prompt: str = ""


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: Usage | None = None


class ModelCapabilities(BaseModel):
    max_input_images: int
    min_input_images: int
    supports_mask: bool
    supports_generation: bool
    supports_edits: bool
    output_formats: list[str]
    max_n: int
    deterministic: bool


class ModelCard(BaseModel):
    """An entry of ``GET /v1/models``: OpenAI's fields first, retouch's after."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    aliases: list[str]
    provider: str
    description: str = ""
    capabilities: ModelCapabilities
    available: bool
    unavailable_reason: str | None = None
    fix: str | None = None
    license: str | None = None
    price_per_image: float | None = None  # USD; 0 is free, None unknown


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
