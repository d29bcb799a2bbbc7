"""The instruction reader: a free-form English prompt → an ordered list of operations.

Each operation module declares ``RULES`` (a regular expression and a builder).
Rules claim the spans of the prompt they match, in the priority order of
``RULES`` below; whatever is left must be filler ("please", "make it", "then", …).
Anything else is reported as not understood — a prompt is never half applied.
"""

from __future__ import annotations

import re

from retouch.engine.ops import Operation, color, geometry, style
from retouch.engine.phrases import FILLER, Rule, normalise
from retouch.errors import UnsupportedInstructionError

# Multi-image phrases first: they contain words ("colours", "image") other rules want.
RULES: tuple[Rule, ...] = style.RULES + color.RULES + geometry.RULES

EXAMPLES = (
    "make it black and white, then rotate it 90 degrees",
    "flip horizontally and resize to 512x512",
    "give the first image the same style as the second image",
)
CAPABILITIES = "grayscale, rotate, flip, resize and restyle one image with the colours of another"


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
