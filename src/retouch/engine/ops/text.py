"""Text on the image: captions, titles and watermarks, in quotes in the prompt.

The text rule runs before every other rule, so that the words inside the quotes are
never read as instructions ("add the text 'rotate me'" does not rotate). ``normalise``
keeps quoted text as typed, so captions keep their case and spacing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from retouch.engine.ops import Context, Operation
from retouch.engine.phrases import COLOR, NUMBER, parse_color, parse_number, rule
from retouch.errors import InvalidRequestError

MAX_TEXT = 500
MAX_PX = 2048
POSITIONS = ("top-left", "top", "top-right", "left", "center", "right",
             "bottom-left", "bottom", "bottom-right")
SIZE_WORDS = {"tiny": 3.0, "small": 5.0, "smaller": 5.0, "medium": 8.0, "normal": 8.0,
              "large": 12.0, "big": 12.0, "bigger": 12.0, "huge": 18.0, "giant": 18.0,
              "very large": 18.0, "very big": 18.0}
OUTLINE_ALPHA = 0.6  # a subtle contrasting edge keeps text legible on busy images
MARGIN = 0.03  # of the shorter side, between text and a border it is placed against


@dataclass(frozen=True)
class AddText(Operation):
    """Draw ``text`` at ``position`` (one of ``POSITIONS``) in ``color``.

    ``size`` is in pixels (``unit="px"``) or percent of the image height (``unit="%"``);
    text wider than the image is scaled down to fit. ``opacity`` is 1–100 %.
    Rendered with Pillow's built-in scalable font, with a thin contrasting outline."""

    text: str
    position: str = "bottom"
    color: tuple[int, int, int] = (255, 255, 255)
    color_name: str = "white"
    size: float = 8.0
    unit: str = "%"
    opacity: int = 100
    watermark: bool = False

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        if self.position not in POSITIONS or self.unit not in ("px", "%"):
            _invalid(f"Text position {self.position!r} / unit {self.unit!r} is not one of "
                     f"{', '.join(POSITIONS)} / px, %.")
        if not self.text.strip() or len(self.text) > MAX_TEXT:
            _invalid(f"The text to add has {len(self.text)} characters: use 1 to {MAX_TEXT}.")
        if self.unit == "px" and not 4 <= self.size <= MAX_PX:
            _invalid(f"Text size {self.size:g}px is out of range: use 4 to {MAX_PX} pixels.")
        if self.unit == "%" and not 0.5 <= self.size <= 100:
            _invalid(f"Text size {self.size:g}% is out of range: use 0.5% to 100% of the image height.")
        if not 1 <= self.opacity <= 100:
            _invalid(f"Text opacity {self.opacity}% is out of range: use 1% to 100%.")

    def apply(self, canvas: np.ndarray, ctx: Context) -> np.ndarray:
        if missing := missing_glyphs(self.text):
            _invalid(f"The built-in font cannot draw {', '.join(repr(c) for c in missing)} in the text "
                     f"{self.text!r}: use ASCII letters, digits and common punctuation.")
        height, width = canvas.shape[:2]
        margin = max(1, round(MARGIN * min(height, width)))
        px = self.size if self.unit == "px" else self.size * height / 100
        coverage = render(self.text, fit_size(self.text, px, width - 2 * margin))
        top, left = place(self.position, coverage[0].shape, (height, width), margin)
        return composite(canvas, coverage, (top, left), self.color, self.opacity / 100)

    def describe(self) -> str:
        size = f"{self.size:g}px" if self.unit == "px" else f"{self.size:g}% height"
        kind = "watermark" if self.watermark else "text"
        opacity = f", {self.opacity}% opacity" if self.opacity < 100 else ""
        return f'{kind} "{self.text}" {self.position}, {self.color_name}, {size}{opacity}'


def _invalid(message: str) -> None:
    raise InvalidRequestError(message, param="prompt", code="invalid_value")


@lru_cache(maxsize=32)
def font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


def missing_glyphs(text: str) -> list[str]:
    """The characters of ``text`` the built-in font has no glyph for (it covers ASCII and
    a few symbols such as ©, °, curly quotes and …; not accented letters)."""
    return sorted({char for char in text if not char.isspace() and not _has_glyph(char)})


@lru_cache(maxsize=1024)
def _has_glyph(char: str) -> bool:
    return _glyph(char) != _glyph("\uffff")  # U+FFFF is never in a font: its box is the "missing" glyph


@lru_cache(maxsize=1024)
def _glyph(char: str) -> tuple[tuple[int, ...], bytes]:
    mask = np.asarray(font(24).getmask(char))
    return mask.shape, mask.tobytes()


def _stroke(px: int) -> int:
    return max(1, round(px / 24))


def fit_size(text: str, px: float, room: int) -> int:
    """The font size in pixels, made smaller if the text would not fit in ``room``."""
    px = max(4, round(px))
    left, _, right, _ = font(px).getbbox(_longest_line(text), stroke_width=_stroke(px))
    if right - left > room > 0:
        px = max(4, int(px * room / (right - left)))
    return px


def _longest_line(text: str) -> str:
    return max(text.split("\n"), key=len)


def render(text: str, px: int) -> tuple[np.ndarray, np.ndarray]:
    """(outline coverage, glyph coverage): two float32 HxW arrays in 0..1 cropped to
    the text; the first covers the glyphs and their outline."""
    text = re.sub(r"[^\S\n]", " ", text)  # tabs and odd spaces have no glyph
    stroke = _stroke(px)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font(px), stroke_width=stroke)
    size, origin = (right - left, bottom - top), (-left, -top)
    layers = []
    for width in (stroke, 0):
        layer = Image.new("L", size)
        ImageDraw.Draw(layer).text(origin, text, fill=255, font=font(px), stroke_width=width, stroke_fill=255)
        layers.append(np.asarray(layer, dtype=np.float32) / 255)
    return layers[0], layers[1]


def place(position: str, text_shape: tuple[int, int], canvas_shape: tuple[int, int],
          margin: int) -> tuple[int, int]:
    """Top-left corner (row, column) of the text box for ``position``."""
    text_h, text_w = text_shape
    height, width = canvas_shape
    vertical = {"top": margin, "bottom": height - margin - text_h}
    horizontal = {"left": margin, "right": width - margin - text_w}
    row = next((v for k, v in vertical.items() if k in position), (height - text_h) // 2)
    column = next((v for k, v in horizontal.items() if k in position), (width - text_w) // 2)
    return row, column


def composite(canvas: np.ndarray, coverage: tuple[np.ndarray, np.ndarray], corner: tuple[int, int],
              color: tuple[int, int, int], opacity: float) -> np.ndarray:
    """Paint the text (outline first, glyphs over it) onto a copy of ``canvas``."""
    outer, inner = _clip(coverage, corner, canvas.shape[:2])
    if outer.size == 0:
        return canvas
    top, left = max(corner[0], 0), max(corner[1], 0)
    rows, cols = slice(top, top + outer.shape[0]), slice(left, left + outer.shape[1])
    outline = (0, 0, 0) if _luma(color) > 60 else (255, 255, 255)
    outline_alpha = outer * OUTLINE_ALPHA * (1 - inner)
    alpha = (inner + outline_alpha) * opacity  # "over" of glyphs on outline
    gray = canvas.ndim == 2 and len(set(color)) == 1  # the outline is black or white: gray too
    inks = list(zip(color, outline))[: 1 if gray else 3]
    # premultiplied colour of glyphs + outline, one plane per channel
    painted = np.dstack([(ink * inner + edge * outline_alpha) * opacity for ink, edge in inks])
    out = _writable(canvas, gray)
    patch = out[rows, cols].astype(np.float32)
    if patch.ndim == 2:
        patch = patch[..., None]
    blended = _over(patch, painted, alpha)
    out[rows, cols] = np.rint(blended.squeeze(axis=2) if out.ndim == 2 else blended)
    return out


def _clip(coverage, corner, shape):
    """The part of the coverage arrays that lies on the canvas."""
    (top, left), (height, width) = corner, shape
    outer, inner = coverage
    rows = slice(max(-top, 0), max(min(outer.shape[0], height - top), 0))
    cols = slice(max(-left, 0), max(min(outer.shape[1], width - left), 0))
    return outer[rows, cols], inner[rows, cols]


def _luma(color: tuple[int, int, int]) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


def _writable(canvas: np.ndarray, gray: bool) -> np.ndarray:
    if canvas.ndim == 2 and not gray:
        return np.repeat(canvas[..., None], 3, axis=2)
    return canvas.copy()


def _over(patch: np.ndarray, painted: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied text over a patch (straight alpha in its 4th channel, if any)."""
    alpha = alpha[..., None]
    channels = painted.shape[2]
    if patch.shape[2] == channels:
        return np.clip(painted + patch * (1 - alpha), 0, 255)
    under = patch[..., 3:] / 255 * (1 - alpha)
    total = alpha + under
    color = (painted + patch[..., :channels] * under) / np.maximum(total, 1e-6)
    return np.clip(np.dstack([color, total * 255]), 0, 255)


# --- phrases --------------------------------------------------------------------------

# normalise() hands quoted text over as typed, between plain double quotes.
_QUOTE = r"""(?<!\w)"(?P<q>.*?\S.*?)"(?!\w)"""
_POS = (r"(?:(?:top|bottom|upper|lower)(?:[\s-]+(?:left|right|cent(?:er|re)|middle))?"
        r"|(?:left|right)(?:[\s-]+(?:top|bottom|upper|lower))?|cent(?:er|re)|middle)")
_SIZE_WORDS = r"very\s+large|very\s+big|" + "|".join(sorted(SIZE_WORDS, key=len, reverse=True))
_SIZE_WORD = rf"(?:{_SIZE_WORDS})"
_NOUNS = r"text|letters|lettering|font|type|writing|words|colou?r|ink"
_HEAD = r"\b(?:add|write|put|place|print|overlay|stamp|insert|type|draw|show|display|caption|label|title|watermark|text)\b"
# Words allowed between the verb and the quotes: one token each, atomic (committed once
# it ends on a word boundary), and at most 16, so no prompt makes the pattern backtrack
# for long.
_PRE_TOKEN = (r"(?>(?:it|this|the|a|an|some|on|onto|over|to|with|in|at|as|of|saying|says|that|which|"
              r"reading|reads|image|picture|photo|caption|title|label|heading|headline|subtitle|word|"
              r"message|watermark|corner|edge|side|semi-?transparent|translucent|top|bottom|upper|"
              rf"lower|left|right|cent(?:er|re)|middle|{_NOUNS}|{_SIZE_WORDS}|{COLOR}|"
              r"\d+(?:\.\d+)?\s*(?:px|pixels?|pt|%))(?!\w))")
_PRE = rf"(?:\s+{_PRE_TOKEN}){{0,16}}\s*:?\s*"
_OPACITY = (rf"(?:(?:with|at)\s+)?(?:(?P<op>{NUMBER})\s*(?:%|percent)\s+(?:opacity|opaque)"
            rf"|(?:an?\s+)?opacity\s+(?:of\s+)?(?P<op2>{NUMBER})\s*(?:%|percent)?)")
_PX = rf"(?P<px>{NUMBER})\s*(?:px|pixels?|pt|points?)\b"
_PCT = rf"(?P<pct>{NUMBER})\s*(?:%|percent)(?:\s+(?:of\s+)?(?:the\s+)?(?:image\s+|picture\s+)?height)?"
_MOD = (
    rf"(?>(?:at|in|on|to|into|along|across)\s+(?:the\s+)?{_POS}(?:\s+(?:corner|edge|side|part))?"
    rf"(?:\s+of\s+(?:the\s+)?(?:image|picture|photo|it))?"
    rf"|{_OPACITY}"
    rf"|(?:(?:in|at|with)\s+)?(?:a\s+)?(?:(?:font\s+)?size\s+(?:of\s+)?)?(?:{_PX}|{_PCT})"
    rf"(?:\s+(?:high|tall|{_NOUNS}))?"
    rf"|(?:in\s+)?(?:a\s+)?{_SIZE_WORD}(?:\s+(?:size|{_NOUNS}))?"
    rf"|(?:in\s+)?{COLOR}(?!\s*(?:-|and|&)\s*white)(?:\s+(?:{_NOUNS}))?"
    rf"|(?:as\s+a\s+)?(?:semi-?transparent|translucent)(?:\s+watermark)?|as\s+a\s+watermark"
    rf"|on\s+(?:it|top|the\s+(?:image|picture|photo)))"
)
_TEXT = rf"{_HEAD}{_PRE}{_QUOTE}(?:\s*,?\s*(?:and\s+)?{_MOD})*"


def _build_text(match: re.Match) -> Operation:
    words = _without(match, "q")
    watermark = "watermark" in words
    opacity, words = _opacity(words, watermark)
    size, unit = _size(words, watermark)
    color = re.search(COLOR, words)
    name = color[0] if color else "white"
    return AddText(text=match["q"], position=_position(words, watermark), color=parse_color(name),
                   color_name=name, size=size, unit=unit, opacity=opacity, watermark=watermark)


def _without(match: re.Match, group: str) -> str:
    """The matched phrase with the quoted text blanked out."""
    start, end = match.span(group)
    text = match.string
    return text[match.start():start] + " " + text[end:match.end()]


def _opacity(words: str, watermark: bool) -> tuple[int, str]:
    found = re.search(_OPACITY, words)
    if found:
        value = max(-1e9, min(parse_number(found["op"] or found["op2"]), 1e9))  # finite, for the range check
        return round(value), words[:found.start()] + " " + words[found.end():]
    if re.search(r"semi-?transparent|translucent", words) or watermark:
        return 50, words
    return 100, words


def _size(words: str, watermark: bool) -> tuple[float, str]:
    if found := re.search(_PX, words):
        return parse_number(found["px"]), "px"
    if found := re.search(_PCT, words):
        return parse_number(found["pct"]), "%"
    if found := re.search(rf"\b{_SIZE_WORD}\b", words):
        return SIZE_WORDS[re.sub(r"\s+", " ", found[0])], "%"
    return (5.0 if watermark else 8.0), "%"


def _position(words: str, watermark: bool) -> str:
    has = {side: re.search(rf"\b(?:{pattern})\b", words) is not None for side, pattern in
           (("top", "top|upper"), ("bottom", "bottom|lower"), ("left", "left"), ("right", "right"),
            ("center", "cent(?:er|re)|middle"))}
    vertical = "top" if has["top"] else "bottom" if has["bottom"] else ""
    horizontal = "left" if has["left"] else "right" if has["right"] else ""
    if vertical or horizontal:
        return "-".join(part for part in (vertical, horizontal) if part)
    if has["center"]:
        return "center"
    if watermark:
        return "bottom-right"
    return "top" if re.search(r"\b(?:title|heading|headline)\b", words) else "bottom"


RULES = (
    rule(_TEXT, _build_text),
)

