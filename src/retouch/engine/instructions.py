"""The instruction reader: a free-form English prompt → an ordered list of operations.

Each operation module declares ``RULES`` (a regular expression and a builder).
Rules claim the spans of the prompt they match, in the priority order of
``RULES`` below; whatever is left must be filler ("please", "make it", "then", …).
Anything else is reported as not understood — a prompt is never half applied.
"""

from __future__ import annotations

import re

from retouch.engine.ops import (Operation, adjustments, background, collage, color, compose, crop, filters, frame,
                                geometry, looks, mask, style, text, upscale)
from retouch.engine.phrases import FILLER, Rule, normalise
from retouch.errors import UnsupportedInstructionError

# Families that span modules: their rule groups interleave in this order. Among the
# shapes, phrases naming a box ("fit 800x800", "pad to 800x800") go before the plainer
# "resize to 800x800" and "crop to 800x600"; the default sizes ("make it smaller") go last.
_COMPOSE_RULES = compose.BACKGROUND_RULES + collage.RULES + compose.LAYER_RULES
_COLOUR_RULES = color.EARLY_RULES + adjustments.RULES + color.LATE_RULES
_SHAPE_RULES = (geometry.TURN_AND_FIT_RULES + frame.PAD_TO_RULES + crop.RULES + frame.EDGE_RULES
                + geometry.RESIZE_RULES)

# Priority order. Quoted text first (it may contain any word), then phrases about
# several images, masks and backgrounds (they contain words like "colours", "blur",
# "image" that single-image rules would otherwise take), then the rest. Upscaling goes
# before filters ("bigger with more detail") and geometry ("upscale 2x").
RULES: tuple[Rule, ...] = (
    text.RULES + _COMPOSE_RULES + style.RULES + mask.RULES + background.RULES
    + upscale.RULES + filters.RULES + looks.RULES + _COLOUR_RULES + _SHAPE_RULES
)

EXAMPLES = (
    "make it black and white, then rotate it 90 degrees and add a white border",
    "crop to 16:9, increase the contrast by 20% and sharpen",
    "give the first image the same style as the second image",
)
CAPABILITIES = (
    "colour and tone (grayscale, sepia, invert, brightness, contrast, saturation, hue, "
    "warmer/cooler, gamma, equalise, posterise, threshold); geometry (rotate, flip, crop, "
    "resize, border/padding, rounded corners); filters (blur, sharpen, denoise, pixelate, "
    "vignette, emboss, edges, cartoon, pencil sketch, watercolour, oil painting, detail); "
    "several images (restyle, histogram match, side by side/stacked/grid, overlay or "
    "watermark, blend, replace the background); masks (inpaint, fill, blur, pixelate the "
    "masked area); remove a plain background; add text; upscale with Real-ESRGAN (2x, 3x, "
    "4x, when retouch[upscale] is installed)"
)


def read_instructions(prompt: str) -> list[Operation]:
    """Every operation the prompt asks for, in the order written.

    Raises ``UnsupportedInstructionError`` (422) naming the part not understood.
    """
    text = normalise(prompt)
    found: list[tuple[int, Operation]] = []
    for rule in RULES:
        text = claim(rule, text, found)
    leftover = unclaimed_parts(text)
    if leftover or not found:
        raise UnsupportedInstructionError(explain(prompt, leftover), param="prompt")
    return [op for _, op in sorted(found, key=lambda item: item[0])]


def claim(rule: Rule, text: str, found: list[tuple[int, Operation]]) -> str:
    """Record each match of ``rule`` and blank its span so no other rule reuses it."""
    for match in rule.pattern.finditer(text):
        if not match.group(0).strip():
            continue
        found.append((match.start(), rule.build(match)))
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end():]
    return text


def unclaimed_parts(text: str) -> list[str]:
    """The stretches of ``text`` holding words no rule claimed, filler trimmed."""
    parts = []
    for segment in re.split(r"[,;.!?:]+|\s{2,}", text):
        words = re.findall(r"[\w'%°#&/-]+", segment)
        if any(word not in FILLER for word in words):
            while words[0] in FILLER:
                words.pop(0)
            while words[-1] in FILLER:
                words.pop()
            parts.append(" ".join(words))
    return parts


def explain(prompt: str, leftover: list[str]) -> str:
    if not prompt.strip():
        head = "The prompt is empty."
    elif leftover:
        head = "retouch/basic did not understand: " + "; ".join(f'"{p}"' for p in leftover) + "."
    else:
        head = f"retouch/basic did not find an edit in {prompt.strip()!r}."
    return (f"{head} It can do: {CAPABILITIES}. Examples: "
            + "; ".join(f'"{e}"' for e in EXAMPLES) + ".")
