"""Image sources (uploads, ``data:`` URLs, http(s) URLs) → validated input images.

Validation happens in two stages so that hostile files cost nothing: the header is
read first (format by magic bytes, pixel count against the cap) and pixels are only
decoded when a backend asks for them.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import BinaryIO

import anyio
import numpy as np
from PIL import Image, ImageOps

from retouch.errors import InvalidImageError, InvalidRequestError, PayloadTooLargeError, RetouchError
from retouch.fetch import UrlFetcher
from retouch.offload import SMALL_WORK_BYTES, run_sized
from retouch.protocol import ImageSource, UploadedImage

# Magic bytes → Pillow format name. Only these formats are ever handed to a decoder.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WEBP"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Slot:
    """Where an input came from: its request field and position, for error messages."""

    param: str
    index: int = 0

    @property
    def label(self) -> str:
        return f"{self.param}[{self.index}]"


@dataclass(frozen=True)
class InputLimits:
    max_images: int = 16
    max_pixels: int = 50_000_000
    max_bytes: int = 50 * 1024 * 1024


class InputImage:
    """A validated input image: format and size known, pixels decoded on demand."""

    def __init__(self, file: BinaryIO, fmt: str, size: tuple[int, int], slot: Slot) -> None:
        self.file = file
        self.format = fmt
        self.width, self.height = size
        self.slot = slot

    def read_bytes(self) -> bytes:
        """The original encoded bytes (for backends that upload them as they are)."""
        self.file.seek(0)
        return self.file.read()

    def pixels(self) -> np.ndarray:
        """Decode to an RGB or RGBA uint8 array, upright per EXIF, without metadata."""
        self.file.seek(0)
        try:
            with Image.open(self.file, formats=[self.format]) as img:
                img.load()
                # In place, and convert only when needed: each full copy of a large
                # image costs page faults on fresh memory in a busy server.
                ImageOps.exif_transpose(img, in_place=True)
                mode = _target_mode(img)
                return np.asarray(img if img.mode == mode else img.convert(mode))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidImageError(
                f"{self.slot.label} could not be decoded ({exc}); the file is truncated or corrupt.",
                param=self.slot.param,
            ) from exc


def _target_mode(img: Image.Image) -> str:
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    return "RGBA" if has_alpha else "RGB"


async def load_inputs(
    sources: list[ImageSource], *, fetcher: UrlFetcher, limits: InputLimits
) -> list[InputImage]:
    """Fetch and header-check every source, keeping their order."""
    if len(sources) > limits.max_images:
        raise InvalidRequestError(
            f"{len(sources)} images were sent; at most {limits.max_images} are allowed "
            "per request (RETOUCH_MAX_IMAGES).",
            param=sources[-1].param,
            code="too_many_images",
        )
    if len(sources) == 1:  # the common case, without a task group
        return [await load_input(sources[0], 0, fetcher=fetcher, limits=limits)]
    results: list[InputImage | RetouchError | None] = [None] * len(sources)

    async def load_one(index: int, source: ImageSource) -> None:
        try:
            results[index] = await load_input(source, index, fetcher=fetcher, limits=limits)
        except RetouchError as error:  # kept, so the first image's problem is the one reported
            results[index] = error

    async with anyio.create_task_group() as group:
        for index, source in enumerate(sources):
            group.start_soon(load_one, index, source)
    for result in results:
        if isinstance(result, RetouchError):
            raise result
    return results  # type: ignore[return-value]


async def load_input(
    source: ImageSource, index: int, *, fetcher: UrlFetcher, limits: InputLimits
) -> InputImage:
    """One source → a header-checked ``InputImage``."""
    slot = Slot(source.param, index)
    file = await _open_source(source, slot, fetcher=fetcher, limits=limits)
    # Reading a header is small work, but it can touch disk (spooled uploads).
    on_disk = not isinstance(file, io.BytesIO)
    fmt, size = await run_sized(SMALL_WORK_BYTES + on_disk, inspect_header, file, slot, limits)
    return InputImage(file, fmt, size, slot)


async def _open_source(
    source: ImageSource, slot: Slot, *, fetcher: UrlFetcher, limits: InputLimits
) -> BinaryIO:
    if isinstance(source, UploadedImage):
        _check_upload_size(source.file, slot, limits.max_bytes)
        return source.file
    if source.url.startswith("data:"):
        return io.BytesIO(decode_data_url(source.url, slot, limits.max_bytes))
    fetched = await fetcher.fetch(source.url, param=source.param)
    return io.BytesIO(fetched.data)


def _check_upload_size(file: BinaryIO, slot: Slot, max_bytes: int) -> None:
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"{slot.label} is {size:,} bytes; the limit is {max_bytes:,} (RETOUCH_MAX_UPLOAD_BYTES).",
            param=slot.param,
            code="image_too_large",
        )


def decode_data_url(url: str, slot: Slot, max_bytes: int) -> bytes:
    """The bytes of a base64 ``data:`` URL, refusing anything else."""
    header, sep, payload = url.partition(",")
    label, param = slot.label, slot.param
    if not sep or not header.endswith(";base64"):
        raise InvalidRequestError(
            f"{label} is a data: URL without ';base64,'; send data:image/png;base64,<data>.",
            param=param,
            code="invalid_url",
        )
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLargeError(
            f"{label} decodes to more than {max_bytes:,} bytes (RETOUCH_MAX_UPLOAD_BYTES).",
            param=param,
            code="image_too_large",
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(
            f"{label} is a data: URL whose base64 payload is malformed ({exc}).",
            param=param,
            code="invalid_url",
        ) from exc


def sniff_format(head: bytes) -> str | None:
    """The Pillow format named by the file's magic bytes, or None."""
    for signature, offset, fmt in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if fmt != "WEBP" or head[:4] == b"RIFF":
                return fmt
    return None


def inspect_header(file: BinaryIO, slot: Slot, limits: InputLimits) -> tuple[str, tuple[int, int]]:
    """Format and upright (width, height) from the header alone; no pixels are decoded."""
    label, param = slot.label, slot.param
    file.seek(0)
    head = file.read(16)
    file.seek(0)
    if not head:
        raise InvalidImageError(f"{label} is empty (0 bytes).", param=param)
    fmt = sniff_format(head)
    if fmt is None:
        raise InvalidImageError(
            f"{label} is not a supported image; send PNG, JPEG, WebP, GIF, BMP or TIFF.",
            param=param,
        )
    width, height, orientation = _read_header(file, fmt, label, param)
    _check_pixels(width, height, label, param, limits.max_pixels)
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return fmt, (width, height)


def _read_header(file: BinaryIO, fmt: str, label: str, param: str) -> tuple[int, int, int]:
    try:
        with Image.open(file, formats=[fmt]) as img:
            return img.width, img.height, _orientation(img)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(
            f"{label} declares too many pixels ({exc}).", param=param, code="image_too_large"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"{label} looks like {fmt} but its header is corrupt ({exc}).", param=param
        ) from exc
    finally:
        file.seek(0)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation, read without decoding pixels.

    For PNG, ``getexif()`` decodes the whole image to look for an eXIf chunk after
    the pixel data; only a chunk before it (already in ``info`` at open) is read here.
    """
    if img.format != "PNG":
        return img.getexif().get(_EXIF_ORIENTATION, 1)
    raw = img.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return exif.get(_EXIF_ORIENTATION, 1)


def _check_pixels(width: int, height: int, label: str, param: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"{label} is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} (RETOUCH_MAX_PIXELS).",
            param=param,
            code="image_too_large",
        )
