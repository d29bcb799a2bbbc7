"""Real backing services for tests, started from the installed binaries on 127.0.0.1:
PostgreSQL (Debian's ``postgresql``) and Redis (``redis-server``). Each stops with its
context; a missing binary skips locally and fails in CI (``conftest.require``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

POSTGRES_USER = "retouch"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL program: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, no fsync); yields the base URL
    ``postgresql://retouch@127.0.0.1:<port>`` (append ``/<database>``)."""
    with restartable_postgres() as (url, _restart):
        yield url


@contextlib.contextmanager
def restartable_postgres() -> Iterator[tuple[str, Callable[[], contextlib.AbstractContextManager]]]:
    """Like ``postgres_server``, and a ``stopped()`` context manager: the server is down
    inside it and back (same port, same data) after it."""
    initdb = postgres_bin("initdb")
    if not initdb or not postgres_bin("postgres"):
        raise FileNotFoundError("PostgreSQL is not installed (Debian package: postgresql)")
    root = Path(tempfile.mkdtemp(prefix="retouch-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(_as_postgres_user([initdb, "-D", str(data), "-U", POSTGRES_USER, "-A", "trust",
                                      "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port = free_port()
    proc = [_start_postgres(data, sockets, port)]

    @contextlib.contextmanager
    def stopped() -> Iterator[None]:
        _stop(proc[0], data, 15)
        try:
            yield
        finally:
            proc[0] = _start_postgres(data, sockets, port)

    try:
        yield f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}", stopped
    finally:
        _stop(proc[0], data, 15)
        shutil.rmtree(root, ignore_errors=True)


def _start_postgres(data: Path, sockets: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(_as_postgres_user([
        postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off", "-c", "max_connections=200"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, "postgres")
    except BaseException:
        _stop(proc, data, 5)
        raise
    return proc


def _stop(proc: subprocess.Popen, data: Path, timeout: float) -> None:
    """Fast shutdown (clients are disconnected), sent to the postmaster itself: ``runuser``
    in between does not pass signals on."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, IndexError):
        os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def create_database(base_url: str) -> str:
    """A new, empty database on the server at ``base_url``; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    psql = postgres_bin("psql")
    host_port = base_url.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    if psql:
        subprocess.run([psql, "-h", host, "-p", port, "-U", POSTGRES_USER, "-d", "postgres", "-q",
                        "-c", f"CREATE DATABASE {name}"], check=True, stdout=subprocess.DEVNULL)
    else:
        createdb = postgres_bin("createdb")
        subprocess.run([createdb, "-h", host, "-p", port, "-U", POSTGRES_USER, name], check=True)
    return f"{base_url}/{name}"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway Redis without persistence; yields ``redis://127.0.0.1:<port>/0``."""
    binary = shutil.which("redis-server")
    if not binary:
        raise FileNotFoundError("redis-server is not installed (Debian package: redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="retouch-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
