"""``retouch doctor``: can this configuration serve? Say what is wrong and how to fix it.

Each check is an async function of the settings that returns ``Finding``s; ``CHECKS``
runs in order, each within ``--timeout`` seconds. A ``problem`` means retouch cannot serve
as configured (exit code 1); a ``warning`` is worth knowing but serving works (a hosted
model without its key is listed as unavailable). To check something more, write
``async def check_<subject>(settings) -> list[Finding]`` and add it to ``CHECKS``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import ValidationError

from retouch.config import Settings
from retouch.errors import ModelNotFoundError
from retouch.observability.logs import redact
from retouch.observability.readiness import ping_redis
from retouch.providers.registry import ConfigError, ModelRegistry

OK, WARNING, PROBLEM = "ok", "warning", "problem"
_LABELS = {OK: "ok", WARNING: "warning", PROBLEM: "PROBLEM"}


@dataclass(frozen=True)
class Finding:
    """What one check found about ``subject``: fine (``ok``) or not, and the fix."""

    subject: str
    detail: str
    level: str = OK
    fix: str | None = None


DoctorCheck = Callable[[Settings], Awaitable[list[Finding]]]


def add_parser(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check settings, models, database, storage, Redis and "
                                           "provider keys; say what is wrong and how to fix it")
    doctor.add_argument("--timeout", type=float, default=10.0,
                        help="seconds each check may take (default 10)")
    doctor.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        findings = [_setting_problem(error) for error in exc.errors()]
    else:
        findings = asyncio.run(diagnose(settings, timeout=args.timeout))
    print(report(findings))
    return 1 if any(f.level == PROBLEM for f in findings) else 0


async def diagnose(settings: Settings, checks: tuple[DoctorCheck, ...] | None = None,
                   timeout: float = 10.0) -> list[Finding]:
    """Every check's findings, in order; a check that hangs or breaks is a problem."""
    findings = [Finding("settings", f"RETOUCH_* settings load; data in {settings.data_dir.resolve()}")]
    for check in checks if checks is not None else CHECKS:
        subject = check.__name__.removeprefix("check_")
        try:
            with anyio.fail_after(timeout):
                findings.extend(await check(settings))
        except TimeoutError:
            findings.append(Finding(subject, f"no answer within {timeout:g} s", PROBLEM,
                                    "make sure it is reachable from this machine, or raise --timeout"))
        except Exception as exc:  # a broken check must not hide the others
            findings.append(Finding(subject, f"the check failed: {type(exc).__name__}: "
                                             f"{redact(str(exc))}", PROBLEM))
    return findings


def report(findings: list[Finding]) -> str:
    """One line per finding, its fix below it, then the verdict."""
    lines = []
    for finding in findings:
        lines.append(f"{_LABELS[finding.level]:<8} {finding.subject}: {finding.detail}")
        if finding.fix and finding.level != OK:
            lines.append(f"{'':<8} fix: {finding.fix}")
    problems = sum(f.level == PROBLEM for f in findings)
    warnings = sum(f.level == WARNING for f in findings)
    noted = f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
    if problems:
        lines.append(f"{problems} problem{'s' * (problems != 1)}{noted}: retouch cannot serve as configured.")
    else:
        lines.append(f"everything retouch needs is in order{noted}.")
    return "\n".join(lines)


def _setting_problem(error: dict) -> Finding:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    variable = f"RETOUCH_{field.upper()}"
    return Finding("settings", f"{variable}: {error['msg']}", PROBLEM,
                   f"correct {variable} in the environment (or unset it to use the default)")


# -- the checks ------------------------------------------------------------------------


def _registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry.from_files(settings.models_file, settings.default_model)


async def check_models(settings: Settings) -> list[Finding]:
    """The catalogue (shipped + RETOUCH_MODELS_FILE) loads and has the default model."""
    source = f"the shipped catalogue + {settings.models_file}" if settings.models_file else "the shipped catalogue"
    try:
        registry = _registry(settings)
    except (ConfigError, OSError) as exc:
        return [Finding("models", str(exc), PROBLEM,
                        "correct the file RETOUCH_MODELS_FILE names (or unset it for the shipped catalogue)")]
    try:
        registry.resolve(settings.default_model)
    except ModelNotFoundError:
        ids = ", ".join(m.id for m in registry.models())
        return [Finding("models", f"the default model {settings.default_model!r} is not in {source}",
                        PROBLEM, f"set RETOUCH_DEFAULT_MODEL to one of: {ids}")]
    return [Finding("models", f"{len(registry.models())} models from {source}; "
                              f"default {settings.default_model}")]


async def check_providers(settings: Settings) -> list[Finding]:
    """Each model's provider has what it needs (its key, its extra); models that share a
    missing key are reported together. Only the default model's absence is a problem."""
    try:
        registry = _registry(settings)
    except (ConfigError, OSError):
        return []  # check_models has said why
    missing: dict[tuple[str, str], list[str]] = {}
    for model in registry.models():
        availability = model.availability()
        if not availability.available:
            missing.setdefault((availability.reason or "unavailable", availability.fix or ""), []).append(model.id)
    findings = []
    for (reason, fix), ids in missing.items():
        level = PROBLEM if settings.default_model in ids else WARNING
        count = f"{len(ids)} model{'s' * (len(ids) != 1)}"
        findings.append(Finding("providers", f"{reason}: {count} unavailable ({', '.join(ids)})",
                                level, fix or None))
    available = len(registry.models()) - sum(len(ids) for ids in missing.values())
    return [Finding("providers", f"{available} of {len(registry.models())} models available"), *findings]


async def check_database(settings: Settings) -> list[Finding]:
    """The database answers ``SELECT 1`` (SQLite: its directory can be created)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database)
    except ArgumentError as exc:
        return [Finding("database", f"RETOUCH_DATABASE_URL is not a database URL ({redact(str(exc))})",
                        PROBLEM, "write it as postgresql://user:password@host:5432/name")]
    shown = url.render_as_string(hide_password=True)
    unborn = _sqlite_directory_to_create(url)
    if unborn is not None:
        return [_creatable("database", unborn, f"{shown}: created at first start")]
    try:
        await select_one(url)
    except (ImportError, ArgumentError) as exc:  # no driver for this kind of database
        return [Finding("database", f"cannot use {shown}: {type(exc).__name__}: {redact(str(exc))}", PROBLEM,
                        "use a postgresql:// or sqlite:// URL; PostgreSQL needs pip install 'retouch[postgres]'")]
    except Exception as exc:  # whatever the driver raises: refused, bad password, no such database
        return [Finding("database", f"{shown} did not answer: {type(exc).__name__}: {redact(str(exc))}",
                        PROBLEM, "start the database or correct RETOUCH_DATABASE_URL (unset it to use "
                                 "SQLite in RETOUCH_DATA_DIR)")]
    return [Finding("database", f"{shown} answers")]


async def select_one(url) -> None:
    """Connect to the database at ``url`` (an SQLAlchemy URL) and run ``SELECT 1``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def _sqlite_directory_to_create(url) -> Path | None:
    """A SQLite file's directory that does not exist yet (the server makes it)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    directory = Path(url.database).parent
    return None if directory.exists() else directory


def _creatable(subject: str, directory: Path, detail: str) -> Finding:
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return Finding(subject, detail)
    return Finding(subject, f"{directory} cannot be created: {existing} is not a writable directory",
                   PROBLEM, "point RETOUCH_DATA_DIR at a directory this user can write")


async def check_storage(settings: Settings) -> list[Finding]:
    """The configured storage can be built and used (``Storage.check``)."""
    from retouch.storage import (
        StorageConfigError,
        StorageUnavailableError,
        build_storage,
    )
    from retouch.storage.signing import UrlSigner

    try:
        # A throwaway signer: the doctor (perhaps run as another user) must not be the one
        # that creates the server's signing.key.
        storage = build_storage(settings, signer=UrlSigner(secrets.token_bytes(32)))
        await storage.check()
    except (StorageConfigError, StorageUnavailableError) as exc:
        detail, _, fix = str(exc).partition(" Fix: ")
        return [Finding("storage", redact(detail), PROBLEM, fix or None)]
    except OSError as exc:
        return [Finding("storage", f"cannot use {settings.data_dir}: {exc.strerror or exc}", PROBLEM,
                        "point RETOUCH_DATA_DIR at a directory this user can write")]
    if settings.storage == "s3":
        return [Finding("storage", f"S3 bucket {settings.s3_bucket} is reachable")]
    return [Finding("storage", f"{settings.files_dir.resolve()} is writable")]


async def check_redis(settings: Settings) -> list[Finding]:
    """Redis answers PING when RETOUCH_REDIS_URL is set."""
    if not settings.redis_url:
        return [Finding("redis", "not configured: rate limits stay in this process (set "
                                 "RETOUCH_REDIS_URL to share them between replicas)")]
    shown = redact(settings.redis_url)
    try:
        await ping_redis(settings.redis_url)
    except ImportError:
        return [Finding("redis", "the redis package is not installed", PROBLEM, "pip install 'retouch[redis]'")]
    except Exception as exc:  # refused, timed out, bad password, not a Redis URL
        return [Finding("redis", f"{shown} did not answer: {type(exc).__name__}: {redact(str(exc))}",
                        PROBLEM, "start Redis there, or correct RETOUCH_REDIS_URL (unset it to keep "
                                 "limits in this process)")]
    return [Finding("redis", f"{shown} answers")]


CHECKS: tuple[DoctorCheck, ...] = (check_models, check_providers, check_database, check_storage, check_redis)
