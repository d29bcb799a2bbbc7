"""The app factory: settings in, a ready FastAPI app out (registry, storage, fetcher)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from retouch import __version__
from retouch.api import files, health, images, models
from retouch.api.errors import install_error_handlers
from retouch.auth import StaticKeyAuthenticator
from retouch.config import Settings
from retouch.fetch import FetchPolicy, UrlFetcher
from retouch.memory import TrimMemoryWhenIdle, keep_large_blocks
from retouch.providers.registry import ModelRegistry
from retouch.service import EditService
from retouch.storage import LocalStorage
from retouch.storage.signing import UrlSigner, load_secret


def build_service(settings: Settings) -> EditService:
    """Everything an edit needs, shared by the HTTP app and the in-process CLI."""
    registry = ModelRegistry.from_files(settings.models_file, settings.default_model)
    storage = LocalStorage(settings.files_dir)
    fetcher = UrlFetcher(FetchPolicy(
        max_bytes=settings.max_fetch_bytes,
        connect_timeout=settings.fetch_connect_timeout,
        total_timeout=settings.fetch_timeout,
        allow_private=settings.allow_private_urls,
        allowed_hosts=settings.allowed_host_set,
    ))
    signer = UrlSigner(load_secret(settings.signing_key, settings.data_dir))
    return EditService(settings, registry, storage, fetcher, signer)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = build_service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        keep_large_blocks()  # in the serving process, whichever started it (workers too)
        yield
        await service.fetcher.aclose()
        for model in service.registry.models():
            await model.aclose()

    app = FastAPI(title="retouch", version=__version__, lifespan=lifespan,
                  description="Self-hosted, OpenAI-compatible image editing.")
    app.state.service = service
    app.state.authenticator = StaticKeyAuthenticator(settings.api_key_list)
    install_error_handlers(app)
    for module in (images, models, files, health):
        app.include_router(module.router)
    app.add_middleware(TrimMemoryWhenIdle)
    return app
