"""The app factory: settings in, a ready FastAPI app out (registry, storage, database,
metrics, readiness checks, background upkeep)."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from retouch import __version__
from retouch.api import admin, files, health, images, metrics, models, playground
from retouch.api.errors import install_error_handlers
from retouch.auth import KeyAuthenticator, StaticKeyAuthenticator
from retouch.auth.limits import Quotas
from retouch.config import Settings
from retouch.db import Database
from retouch.db.keys import KeyStore
from retouch.db.usage import UsageLog
from retouch.fetch import FetchPolicy, UrlFetcher
from retouch.idempotency import IdempotencyStore
from retouch.memory import TrimMemoryWhenIdle, keep_large_blocks
from retouch.observability import (
    HttpMetricsMiddleware,
    Metrics,
    ReadinessChecks,
    RequestIdMiddleware,
)
from retouch.observability.readiness import ping_redis
from retouch.providers.registry import ModelRegistry
from retouch.service import EditService
from retouch.storage import build_storage
from retouch.storage.retention import RetentionPolicy, pruning_in_background
from retouch.storage.signing import UrlSigner, load_secret
from retouch.upkeep import every

# Kept answers expire after a day; deleting them a little late costs nothing.
IDEMPOTENCY_PRUNE_S = 600.0


def build_service(settings: Settings) -> EditService:
    """Everything an edit needs, shared by the HTTP app and the in-process CLI."""
    registry = ModelRegistry.from_files(settings.models_file, settings.default_model, settings)
    signer = UrlSigner(load_secret(settings.signing_key, settings.data_dir))
    storage = build_storage(settings, signer)
    fetcher = UrlFetcher(FetchPolicy(
        max_bytes=settings.max_fetch_bytes,
        connect_timeout=settings.fetch_connect_timeout,
        total_timeout=settings.fetch_timeout,
        allow_private=settings.allow_private_urls,
        allowed_hosts=settings.allowed_host_set,
    ))
    return EditService(settings, registry, storage, fetcher, signer)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = build_service(settings)
    database = Database(settings.database)
    usage = UsageLog(database) if settings.usage_log else None
    quotas = Quotas.from_settings(settings, usage)
    idempotency = IdempotencyStore(database)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        keep_large_blocks()  # in the serving process, whichever started it (workers too)
        await database.upgrade()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_close_all, service)
            stack.push_async_callback(database.aclose)
            stack.push_async_callback(quotas.aclose)
            if usage is not None:
                usage.start()
                stack.push_async_callback(usage.close)
            await stack.enter_async_context(
                pruning_in_background(service.storage, RetentionPolicy.from_settings(settings)))
            await stack.enter_async_context(every(IDEMPOTENCY_PRUNE_S, idempotency.prune_expired))
            yield

    app = FastAPI(title="retouch", version=__version__, lifespan=lifespan,
                  description="Self-hosted, OpenAI-compatible image editing.")
    app.state.service = service
    app.state.database, app.state.usage = database, usage
    app.state.quotas, app.state.idempotency = quotas, idempotency
    app.state.keys = KeyStore(database)
    app.state.authenticator = KeyAuthenticator(StaticKeyAuthenticator(settings.api_key_list), app.state.keys)
    app.state.metrics = Metrics(service.registry.models())
    app.state.readiness = _readiness(settings, database, service)
    install_error_handlers(app)
    for module in (images, models, files, health, metrics, admin, playground):
        app.include_router(module.router)
    app.add_middleware(TrimMemoryWhenIdle)
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the id
    return app


def _readiness(settings: Settings, database: Database, service: EditService) -> ReadinessChecks:
    checks = ReadinessChecks()
    checks.add("database", database.check)
    checks.add("storage", service.storage.check)
    if settings.redis_url:
        checks.add("redis", lambda: ping_redis(settings.redis_url))
    return checks


async def _close_all(service: EditService) -> None:
    await service.fetcher.aclose()
    for model in service.registry.models():
        await model.aclose()
