"""The one place errors become HTTP responses: always the OpenAI envelope."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retouch.errors import InvalidRequestError, RetouchError, ServiceUnavailableError
from retouch.observability.logs import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger("retouch.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def render(error: RetouchError) -> JSONResponse:
    return JSONResponse(error.to_envelope(), status_code=error.status, headers=error.headers)


async def _retouch_error(request: Request, exc: RetouchError) -> JSONResponse:
    log.info("%s %s → %s %s: %s", request.method, request.url.path, exc.status, exc.code, exc.message)
    return render(exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Starlette's own errors (unknown route, wrong method, malformed multipart).
    body = {"error": {"message": str(exc.detail), "type": "invalid_request_error",
                      "param": None, "code": _HTTP_CODES.get(exc.status_code)}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = str(first["loc"][-1]) if first["loc"] else None
    return render(InvalidRequestError(f"{param}: {first['msg']}", param=param))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if _database_away(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        error: RetouchError = ServiceUnavailableError(
            "The database does not answer right now; try again shortly.", code="database_unavailable")
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = RetouchError("The server hit an internal error; it has been logged.")
    # Starlette answers these outside user middleware: echo the request id here.
    request_id = current_request_id()
    answer = render(error)
    if request_id:
        answer.headers[REQUEST_ID_HEADER] = request_id
    return answer


def _database_away(exc: Exception) -> bool:
    """A lost or refused database connection (a restart, a failover): worth a retry, which
    the openai clients make on a 503. The pool has dropped the broken connections by now."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)):
        return True
    return isinstance(exc, ConnectionError | TimeoutError) or type(exc).__module__.startswith("asyncpg")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RetouchError, _retouch_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
