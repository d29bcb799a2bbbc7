"""The instruction reader: phrasings → operations, and clean 422s for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retouch.engine.instructions import read_instructions
from retouch.errors import UnsupportedInstructionError

# prompt → the readable operations it must yield (revised_prompt form).
PHRASINGS = {
    "grayscale": ["grayscale"],
    "Make it black and white.": ["grayscale"],
    "please convert to greyscale": ["grayscale"],
    "B&W please": ["grayscale"],
    "remove the colours": ["grayscale"],
    "rotate 90 degrees": ["rotate 90° clockwise"],
    "Rotate it ninety degrees counter-clockwise": ["rotate 90° counter-clockwise"],
    "rotate left": ["rotate 90° counter-clockwise"],
    "turn it 45 degrees to the right": ["rotate 45° clockwise"],
    "rotate by one hundred eighty degrees": ["rotate 180° clockwise"],
    "spin it upside down": ["rotate 180° clockwise"],
    "flip": ["flip horizontal"],
    "mirror the image": ["flip horizontal"],
    "flip it vertically": ["flip vertical"],
    "flip upside down": ["flip vertical"],
    "resize to 512x256": ["resize to 512x256"],
    "scale it to 50%": ["resize 50%"],
    "scale by 2x": ["resize 200%"],
    "resize to width 300px": ["resize to width 300"],
    "make it black and white, then rotate it 90 degrees": ["grayscale", "rotate 90° clockwise"],
    "Flip horizontally and resize to 512x512": ["flip horizontal", "resize to 512x512"],
    "rotate 90; grayscale; mirror": ["rotate 90° clockwise", "grayscale", "flip horizontal"],
    "Replace the first image have the same image style as the second image.":
        ["restyle with the colours of the second image"],
    "give the first image the same colours as image 2": ["restyle with the colours of the second image"],
    "match the colour palette of the last image": ["restyle with the colours of the last image"],
    "use the same style as the reference image": ["restyle with the colours of the second image"],
}


@pytest.mark.parametrize("prompt", sorted(PHRASINGS))
def test_phrasing_yields_operations(prompt):
    assert [op.describe() for op in read_instructions(prompt)] == PHRASINGS[prompt]


@pytest.mark.parametrize("prompt, named", [
    ("add a unicorn", "add a unicorn"),
    ("grayscale and paint it like monet", "paint it like monet"),
    ("rotate 90 degrees, then sprinkle glitter", "sprinkle glitter"),
])
def test_unknown_part_is_named(prompt, named):
    with pytest.raises(UnsupportedInstructionError) as caught:
        read_instructions(prompt)
    assert caught.value.param == "prompt"
    assert f'"{named}"' in caught.value.message
    assert "Examples" in caught.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_operations_or_a_clean_422(prompt):
    try:
        operations = read_instructions(prompt)
    except UnsupportedInstructionError as error:
        assert error.status == 422 and error.code == "unsupported_instruction"
    else:
        assert operations and all(op.describe() for op in operations)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["rotate", "flip", "grayscale", "resize", "to", "by", "degrees", "50%",
                                 "then", "and", "the", "second", "image", "style", "as", "ninety", "x", "2"]),
                max_size=12))
def test_keyword_soup_never_raises_anything_else(words):
    try:
        read_instructions(" ".join(words))
    except UnsupportedInstructionError:
        pass
