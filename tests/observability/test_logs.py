"""Logs: JSON lines with the request id from ``retouch serve``, and never a key."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
import yaml

from retouch.observability.logs import (
    TEXT_FORMAT,
    JsonFormatter,
    RedactSecrets,
    RequestIdFilter,
    logging_config,
    redact,
)
from tests.images import png
from tests.observability.conftest import retouch_serve
from tests.providers.fake_openai import FakeOpenAI, error_reply, running_fake
from tests.servers import running_retouch

CLIENT_KEY = "sk-client-secret-5a1f9c0e2b7d"
UPSTREAM_KEY = "sk-upstream-secret-8d2e4b6a0c1f"


def test_served_requests_log_json_lines_with_their_id_and_no_key(tmp_path, monkeypatch):
    # The upstream fails and echoes the key it was sent: retouch logs that failure.
    monkeypatch.setenv("LOGS_UPSTREAM_KEY", UPSTREAM_KEY)
    with running_fake(FakeOpenAI(key=UPSTREAM_KEY)) as fake:
        fake.reply = error_reply(500, f"broken; you sent Authorization: Bearer {UPSTREAM_KEY}")
        models = tmp_path / "models.yaml"
        models.write_text(yaml.safe_dump({"models": [{
            "id": "echoing-upstream", "provider": "openai_compatible", "api_base": f"{fake.url}/v1",
            "api_key_env": "LOGS_UPSTREAM_KEY", "retries": 0}]}))
        env = {"RETOUCH_LOG_FORMAT": "json", "RETOUCH_API_KEYS": CLIENT_KEY, "RETOUCH_MODELS_FILE": str(models)}
        with retouch_serve(tmp_path, env) as served, httpx.Client(base_url=served.base, timeout=30) as client:
            auth = {"authorization": f"Bearer {CLIENT_KEY}"}
            ok = client.post("/v1/images/edits", data={"prompt": "grayscale"}, headers={**auth, "x-request-id": "req-ok"},
                             files={"image": ("a.png", png(), "image/png")})
            failed = client.post("/v1/images/edits", data={"prompt": "grayscale", "model": "echoing-upstream"},
                                 headers={**auth, "x-request-id": "req-upstream"},
                                 files={"image": ("a.png", png(), "image/png")})
            refused = client.get("/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}x",
                                                        "x-request-id": "req-refused"})
            served.process.terminate()
            served.process.wait(20)
        lines = served.log_lines()
    assert (ok.status_code, failed.status_code, refused.status_code) == (200, 502, 401)
    entries = [json.loads(line) for line in lines]  # every line is JSON
    by_id = {}
    for entry in entries:
        by_id.setdefault(entry.get("request_id"), []).append(entry)
    access = [e for e in by_id["req-ok"] if e["logger"] == "uvicorn.access"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [("POST", "/v1/images/edits", 200)]
    warnings = [e for e in by_id["req-upstream"] if e["level"] == "warning"]
    assert warnings and all("[redacted]" in e["message"] for e in warnings)
    assert any(e["status"] == 401 for e in by_id["req-refused"] if e["logger"] == "uvicorn.access")
    everything = "\n".join(lines)
    assert CLIENT_KEY not in everything and UPSTREAM_KEY not in everything


@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("Authorization: Bearer sk-abc123def456ghi789", "sk-abc123def456ghi789", "Authorization: Bearer [redacted]"),
    ("authorization: bearer tok_0123456789", "tok_0123456789", "authorization: bearer [redacted]"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "Authorization: Basic [redacted]"),
    ("headers {'authorization': 'plainkey-0123456789'}", "plainkey-0123456789", "'authorization': '[redacted]'"),
    ("x-api-key=abcdef0123456789 sent", "abcdef0123456789", "x-api-key=[redacted] sent"),
    ("the key is sk-proj-AbC_123-456789xyz", "sk-proj-AbC_123-456789xyz", "the key is [redacted key]"),
    ("GET /files/inputs/a.png?expires=99&signature=c2lnbmF0dXJl", "c2lnbmF0dXJl", "expires=99&signature=[redacted]"),
    ("cannot reach postgresql://app:hunter2@db:5432/retouch", "hunter2", "postgresql://app:[redacted]@db:5432"),
    ("redis://:hunter2@10.0.0.5:6379/0 refused", "hunter2", "redis://:[redacted]@10.0.0.5"),
    ("image data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA", "iVBORw0KGgo", "data:image/png;base64,[redacted]"),
    ("raw " + "QUJD" * 100, "QUJDQUJD", "raw [base64 redacted]"),
])
def test_redaction_blanks_credentials_and_image_bytes(text, gone, kept):
    redacted = redact(text)
    assert gone not in redacted and kept in redacted


@pytest.mark.parametrize("text", [
    "clients send 'Authorization: Bearer <key>'",
    "model gpt-image-1 dropped parameters it cannot honour: quality",
    "model retouch/basic does not use quality='high'; it has no effect",
    "key-1a2b3c4d used retouch/basic",  # a key label, safe by design
    "GET /v1/images/edits?model=basic",
    "set RETOUCH_API_KEYS=key1,key2",
])
def test_redaction_keeps_ordinary_messages(text):
    assert redact(text) == text


def test_configured_secrets_are_removed_wherever_they_appear():
    assert redact("static key opensesame-42 seen", ["opensesame-42"]) == "static key [redacted] seen"
    assert redact("short abc seen", ["abc"]) == "short abc seen"  # too short to be told from words


def capture(formatter: logging.Formatter, secrets=()) -> tuple[logging.Logger, io.StringIO]:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecrets(secrets))
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.observability.{id(lines)}")
    logger.propagate, logger.level = False, logging.INFO
    logger.handlers = [handler]
    return logger, lines


def test_json_lines_redact_arguments_extras_and_tracebacks():
    logger, lines = capture(JsonFormatter(), secrets=["static-key-0001"])
    try:
        raise ValueError("upstream said Authorization: Bearer sk-zzzzzzzzzzzzzzzz")
    except ValueError:
        logger.exception("call failed with %s", "static-key-0001", extra={"model": "retouch/basic"})
    entry = json.loads(lines.getvalue())
    assert entry["message"] == "call failed with [redacted]" and entry["model"] == "retouch/basic"
    assert entry["level"] == "error" and "ValueError" in entry["exception"]
    assert "sk-zzzz" not in entry["exception"] and "request_id" not in entry


def test_text_lines_carry_the_request_id_of_the_request_being_served(make_settings):
    logger, lines = capture(logging.Formatter(TEXT_FORMAT))
    api = logging.getLogger("retouch.api")
    api.addHandler(logger.handlers[0])
    level, api.level = api.level, logging.INFO
    try:
        with running_retouch(make_settings()) as base:
            httpx.post(f"{base}/v1/images/edits", headers={"x-request-id": "text-42"},
                       data={"prompt": "grayscale", "model": "nope"},
                       files={"image": ("a.png", png(), "image/png")})
    finally:
        api.removeHandler(logger.handlers[0])
        api.level = level
    assert " INFO retouch.api [text-42] POST /v1/images/edits → 404 model_not_found" in lines.getvalue()


def test_logging_config_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="log_format"):
        logging_config("yaml")
