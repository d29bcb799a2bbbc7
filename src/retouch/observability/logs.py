"""Logs an operator can search and ship: one request id per request, JSON lines, no secrets.

- ``RequestIdMiddleware`` takes a sane ``X-Request-ID`` from the client (or makes one),
  keeps it in ``request.state.request_id`` and a context variable, and sends it back on
  every response that passes through it.
- ``RequestIdFilter`` stamps each log record with that id; ``JsonFormatter`` writes one
  JSON object per line; ``RedactSecrets`` blanks what looks like a key, an
  ``Authorization`` value, a signed-URL signature, a URL password or image bytes.
- ``logging_config`` ties them together as a ``logging.config.dictConfig`` dictionary,
  which ``retouch serve`` hands to uvicorn (so its own loggers follow the same format).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode("ascii")
# What an incoming id may be: what tracing systems send (UUIDs, hex, base64, "1-5f…"),
# nothing that could forge a log line or a header, at most 128 characters.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@=+/-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("retouch_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this task, if any."""
    return _request_id.get()


def accept_request_id(incoming: str | None) -> str:
    """``incoming`` when it is a sane id, otherwise a new random one."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """ASGI middleware: every HTTP request gets an id, echoed as ``X-Request-ID``.

    The context variable is deliberately left set when the request ends: the server runs
    each request in its own task, and the handler of unexpected errors (which Starlette
    runs outside user middleware) still logs with the id.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(_header(scope, _REQUEST_ID_BYTES))
        scope.setdefault("state", {})["request_id"] = request_id
        _request_id.set(request_id)
        echoed = (_REQUEST_ID_BYTES, request_id.encode("ascii"))

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


# -- redaction -------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9._~+/=-]+"  # RFC 6750 token68: never a quote or a backslash
# (pattern, replacement, words of which one must be in the lower-cased text for the
# pattern to be tried: most log lines contain none, and skip every regex).
_REDACTIONS: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    # "Bearer sk-…", "Basic dXNl…" wherever they appear ("retouch/basic model" is no header).
    (re.compile(rf"\b(bearer)\s+{_TOKEN}", re.IGNORECASE), r"\1 [redacted]", ("bearer",)),
    (re.compile(rf"\b(Basic)\s+(?=[A-Za-z0-9+/=]{{8}}){_TOKEN}"), r"\1 [redacted]", ("basic",)),
    # Header-like "Authorization: sk-…", "x-api-key=…", "'authorization': '…'".
    (re.compile(r"\b(authorization|proxy-authorization|x-api-key|api[-_]?key|x-goog-api-key|x-key)"
                r"(['\"]?\s*[:=]\s*['\"]?)(?!bearer\b|basic\b|\[redacted)[^\s'\",;}&]+",
                re.IGNORECASE), r"\1\2[redacted]", ("authorization", "api-key", "api_key", "apikey", "x-key")),
    # Keys in the usual provider shapes, even alone in a message.
    (re.compile(r"\b(?:(?:sk|rk|pk)-[A-Za-z0-9_-]{12,}|r8_[A-Za-z0-9]{20,}|AIza[A-Za-z0-9_-]{30,})"),
     "[redacted key]", ("sk-", "rk-", "pk-", "r8_", "aiza")),
    # Signatures and credentials in query strings (signed links, presigned S3 URLs).
    (re.compile(r"([?&](?:signature|sig|token|access_token|api_key|apikey|key|x-amz-signature|"
                r"x-amz-credential|x-amz-security-token)=)[^&\s'\"]+", re.IGNORECASE),
     r"\1[redacted]", ("sig", "token", "key", "x-amz-")),
    # Passwords in URLs: postgresql://user:secret@host, redis://:secret@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s/'\"]+@", re.IGNORECASE), r"\1[redacted]@",
     ("://",)),
    # Image bytes: data URLs and long base64 runs.
    (re.compile(r"(data:[\w/+.-]*;base64,)[A-Za-z0-9+/=]{16,}"), r"\1[redacted]", ("base64,",)),
]
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")
# Below this length a configured secret is too likely to be an ordinary word.
_MIN_LITERAL = 8


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with anything that looks like a credential or image bytes blanked, and
    every one of ``secrets`` (known keys) removed wherever it appears."""
    for secret in secrets:
        if len(secret) >= _MIN_LITERAL and secret in text:
            text = text.replace(secret, "[redacted]")
    lowered = text.lower()
    for pattern, replacement, words in _REDACTIONS:
        for word in words:
            if word in lowered:
                text = pattern.sub(replacement, text)
                break
    if len(text) >= 256:
        text = _BASE64_RUN.sub("[base64 redacted]", text)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter: each record's message (arguments merged in) and traceback are
    redacted before any formatter sees them. ``secrets``: literal values to remove too
    (static API keys, the admin key)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= _MIN_LITERAL)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            _structure_access(record, self.secrets)
        record.msg, record.args = redact(record.getMessage(), self.secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def _structure_access(record: logging.LogRecord, secrets: tuple[str, ...]) -> None:
    # uvicorn's access line: (client, method, path with query, HTTP version, status).
    client, method, path, _version, status = record.args
    record.client, record.method, record.status = client, method, status
    record.path = redact(str(path), secrets)


class RequestIdFilter(logging.Filter):
    """A handler filter: ``record.request_id`` is the current request's id, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        return True


# -- formatting ------------------------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Record attributes that are not ``extra=`` fields (uvicorn's color_message repeats the message).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``,
    ``request_id`` when serving a request, ``exception`` when one was logged, and any
    ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id and request_id != "-":
            entry["request_id"] = request_id
        for name in sorted(vars(record).keys() - _STANDARD):
            if not name.startswith("_") and name not in entry:
                entry[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log_format: str = "text", *, level: str = "INFO",
                   secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A ``dictConfig`` dictionary: every record (retouch's and uvicorn's, access lines
    included) goes to stderr through the request-id and redaction filters, as text or
    JSON. Pass it to ``uvicorn.run(log_config=…)`` or ``logging.config.dictConfig``."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format={log_format!r}: choose text or json")
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
               "formatter": log_format, "filters": ["request_id", "redact"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": f"{__name__}.RequestIdFilter"},
            "redact": {"()": f"{__name__}.RedactSecrets", "secrets": [s for s in secrets if s]},
        },
        "formatters": {
            "text": {"format": TEXT_FORMAT},
            "json": {"()": f"{__name__}.JsonFormatter"},
        },
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["default"], "level": level},
    }
