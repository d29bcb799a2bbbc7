"""The phrasing tables (tests/engine/phrasings/*.yaml): prompt → operations, as data.

Each file maps a prompt to the list of operation descriptions it must yield
(``describe()``, the form shown in ``revised_prompt``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retouch.engine.instructions import read_instructions

TABLES = sorted((Path(__file__).parent / "phrasings").glob("*.yaml"))
CASES = [(table.stem, prompt, expected)
         for table in TABLES
         for prompt, expected in (yaml.safe_load(table.read_text()) or {}).items()]


def test_tables_are_big_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("table, prompt, expected", CASES, ids=[f"{t}:{p[:40]}" for t, p, _ in CASES])
def test_phrasing(table, prompt, expected):
    assert [op.describe() for op in read_instructions(prompt)] == expected
