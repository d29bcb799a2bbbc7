"""The instruction reader: phrasings → operations, and clean 422s for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retouch.engine.generation import EXAMPLES as GENERATION_EXAMPLES
from retouch.engine.generation import read_generation
from retouch.engine.instructions import EXAMPLES, read_instructions
from retouch.errors import InvalidRequestError, UnsupportedInstructionError



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
    except InvalidRequestError as error:  # understood, but an impossible amount ("crop to 0:5")
        assert error.status == 400 and error.param == "prompt"
    else:
        assert operations and all(op.describe() for op in operations)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["rotate", "flip", "grayscale", "resize", "to", "by", "degrees", "50%",
                                 "then", "and", "the", "second", "image", "style", "as", "ninety", "x", "2"]),
                max_size=12))
def test_keyword_soup_never_raises_anything_else(words):
    try:
        read_instructions(" ".join(words))
    except (UnsupportedInstructionError, InvalidRequestError) as error:
        assert error.param == "prompt"


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_shown_in_errors_are_understood(example):
    assert read_instructions(example)


@pytest.mark.parametrize("example", GENERATION_EXAMPLES)
def test_generation_examples_are_understood(example):
    assert read_generation(example, None)
