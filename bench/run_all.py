"""Run every benchmark in turn (``make bench``): each in its own process, output as it comes.

Run: ``.venv/bin/python bench/run_all.py``

The benchmarks print figures and PASS/FAIL lines against their goals; none asserts, so
this exits 0 unless a benchmark itself crashed (non-zero exit) or ran past its time cap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["encoding.py", "http_overhead.py", "upload_memory.py", "engine_ops.py",
              "reader_worst_case.py", "gateway_overhead.py", "backbone.py", "local_models.py"]
TIME_CAP = 900  # seconds per benchmark; engine_ops.py at 4096² takes several minutes


def run_one(script: Path) -> int | str:
    """Run one benchmark (output streams straight through); its exit code or why it stopped.

    It runs in its own process group, so that past the time cap SIGINT reaches it and the
    server it started (the benchmark stops its server on KeyboardInterrupt), then SIGKILL."""
    proc = subprocess.Popen([sys.executable, str(script)], cwd=HERE.parent,
                            start_new_session=True)
    try:
        return proc.wait(TIME_CAP)
    except BaseException as exc:  # the time cap, or Ctrl-C here
        for sig, grace in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if isinstance(exc, subprocess.TimeoutExpired):
            return f"stopped after {TIME_CAP} s"
        raise


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"=== {name} ===", flush=True)
        start = time.perf_counter()
        code = run_one(HERE / name)
        print(f"=== {name}: {time.perf_counter() - start:.1f} s"
              f"{'' if code == 0 else f', exit {code}'} ===\n", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print("benchmarks that did not complete:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
