"""Shared by the benchmarks: a real ``retouch serve`` in a subprocess, on 127.0.0.1.

    with RetouchServer() as server:           # starts, waits for /healthz
        httpx.get(server.url + "/healthz")
        server.rss()                           # bytes, the server and any children
    # stopped (SIGTERM, then SIGKILL after a grace period) and its data dir removed

The server runs exactly as ``retouch serve --port P`` (``python -m retouch.cli``
under the same interpreter as the benchmark), with ``RETOUCH_DATA_DIR`` in a
temporary directory and its log in a file there (``server.log_tail()``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class RetouchServer:
    """A ``retouch serve`` subprocess; a context manager that always stops it."""

    def __init__(self, *, env: dict[str, str] | None = None, start_timeout: float = 30.0,
                 stop_timeout: float = 10.0, serve_args: list[str] | None = None) -> None:
        self.extra_env = dict(env or {})
        self.serve_args = list(serve_args or [])
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.log_path: Path | None = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> RetouchServer:
        self.tmp = Path(tempfile.mkdtemp(prefix="retouch-bench-"))
        self.log_path = self.tmp / "server.log"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = dict(os.environ)
        env.update({
            "RETOUCH_DATA_DIR": str(self.tmp / "data"),
            "PYTHONUNBUFFERED": "1",
            # a checkout that was never installed still runs
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p),
        })
        env.update(self.extra_env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retouch.cli", "serve", "--host", HOST, "--port", str(self.port), *self.serve_args],
            env=env, cwd=self.tmp, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        wait_healthy(self.proc, self.url, self.start_timeout, "retouch serve", self.log_tail)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it lingers; clean up."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            children = _children(proc.pid)
            terminate(proc, self.stop_timeout)
            for child in children:  # only this server's own children, by pid
                try:
                    child.kill()
                except psutil.Error:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> RetouchServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not running"
        return self.proc.pid

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def rss(self) -> int:
        """Resident set size in bytes of the server process plus its children."""
        return process_tree_rss(self.process())

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def process_tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *_children(proc.pid)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float, name: str, log_tail) -> None:
    """Wait until ``url``/healthz answers 200; raise with the server's log if it exits or
    stays silent for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_tail()}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer /healthz within {timeout:.0f} s:\n{log_tail()}")


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it lingers past ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
