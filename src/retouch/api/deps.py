"""FastAPI dependencies: the service and the caller, taken from the app's state."""

from __future__ import annotations

from fastapi import Request

from retouch.auth import Principal
from retouch.service import EditService


# Async on purpose: FastAPI runs plain ``def`` dependencies in a worker thread, a thread
# hop per request for a dictionary lookup.


def service_of(request: Request) -> EditService:
    """The app's service; hot endpoints call this directly, a dependency costs more."""
    return request.app.state.service


async def get_service(request: Request) -> EditService:
    return service_of(request)


async def authenticate(request: Request) -> Principal:
    """Raises ``AuthenticationError`` (401) unless the request carries a valid key."""
    return await request.app.state.authenticator.authenticate(request.headers.get("authorization"))


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
