"""Benchmark: the instruction reader on hostile prompts (regular-expression blow-ups).

Run: ``.venv/bin/python bench/reader_worst_case.py [--length N]``

Prompts may be 32,000 characters long. Each rule of ``instructions.RULES`` is run over
long repetitions of the words rules look for; a rule that backtracks shows up as seconds
instead of milliseconds. Prints the slowest rules per input and the whole reader's time
per input against a typical prompt's. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from retouch.engine.instructions import RULES, read_instructions  # noqa: E402
from retouch.engine.phrases import normalise  # noqa: E402
from retouch.errors import RetouchError  # noqa: E402

UNITS = ["1 ", "1", "twenty ", "the ", "add ", "a ", "at the top and ", "in red text ", "white ",
         "remove the ", "image 2 ", "'a", "\"x\" ", "10px ", "by ", "x", "% ", "blur ", "crop ",
         "of the second image ", "degrees ", "- ", "rotate ", ", ", "with ", "and then "]
BUDGET_S = 0.5  # a rule slower than this on one input is reported


def time_rule(pattern, text: str) -> float:
    start = time.perf_counter()
    for _ in pattern.finditer(text):
        pass
    return time.perf_counter() - start


def time_reader(prompt: str) -> float:
    start = time.perf_counter()
    try:
        read_instructions(prompt)
    except RetouchError:
        pass
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=8000, help="characters per hostile prompt")
    args = parser.parse_args()
    typical = time_reader("make it black and white, then rotate it 90 degrees and add a white border")
    slow = 0
    print(f"{len(RULES)} rules; hostile prompts of {args.length} characters; typical prompt "
          f"{1e3 * typical:.2f} ms")
    print(f"{'repeated unit':22} {'reader ms':>10} {'x typical':>10}  slowest rule (ms)")
    for unit in UNITS:
        prompt = (unit * (args.length // len(unit) + 1))[: args.length]
        text = normalise(prompt)
        timings = sorted(((time_rule(r.pattern, text), i) for i, r in enumerate(RULES)), reverse=True)
        whole = time_reader(prompt)
        worst_s, worst_i = timings[0]
        slow += sum(t > BUDGET_S for t, _ in timings)
        print(f"{unit!r:22} {1e3 * whole:10.1f} {whole / typical:10.0f}  #{worst_i} {1e3 * worst_s:.1f}")
    print(f"rules slower than {BUDGET_S} s on some input: {slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
