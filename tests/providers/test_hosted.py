"""The shared hosted-backend machinery, against a real local HTTP server."""

from __future__ import annotations

import httpx
import pytest

from retouch.errors import RateLimitError, UpstreamError, UpstreamTimeoutError
from retouch.providers.base import EditJob, EditResult
from retouch.providers.hosted import HostedEditModel
from tests.servers import static_server


class EchoModel(HostedEditModel):
    provider = "echo"
    default_api_key_env = "ECHO_KEY"

    async def edit(self, job: EditJob) -> EditResult:
        raise AssertionError("not used")


def _answer(status: int, body: object, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize("status, body, error, text", [
    (401, {"error": {"message": "bad key sk-secret"}}, UpstreamError, "ECHO_KEY"),
    (429, {"error": "slow down"}, RateLimitError, "slow down"),
    (422, {"detail": [{"loc": ["body", "image_url"], "msg": "Image is too large"}]}, None, "image_url: Image is too large"),
    (503, {"message": "maintenance"}, UpstreamError, "maintenance"),
    (504, {}, UpstreamTimeoutError, "timed out"),
])
def test_upstream_errors_map_onto_the_envelope(status, body, error, text):
    model = EchoModel("echo/model", config={"api_base": "http://127.0.0.1:9"})
    mapped = model.upstream_error(_answer(status, body, {"retry-after": "7"}))
    if error is not None:
        assert isinstance(mapped, error)
    else:
        assert mapped.status == 400
    assert text in mapped.message
    assert "sk-secret" not in mapped.message
    if status == 429:
        assert mapped.headers["retry-after"] == "7"


def test_availability_names_the_variable(monkeypatch):
    monkeypatch.delenv("ECHO_KEY", raising=False)
    model = EchoModel("echo/model")
    assert not model.availability().available and "ECHO_KEY" in model.availability().fix
    monkeypatch.setenv("ECHO_KEY", "k")
    assert model.availability().available


@pytest.mark.anyio
async def test_results_only_from_known_hosts(tmp_path):
    (tmp_path / "r.png").write_bytes(b"\x89PNG result")
    with static_server(tmp_path) as base:
        model = EchoModel("echo/model", config={"api_base": base})
        assert await model.fetch_result(f"{base}/r.png") == b"\x89PNG result"
        with pytest.raises(UpstreamError, match="unexpected host"):
            await model.fetch_result("http://example.org/r.png")
        with pytest.raises(UpstreamError):
            await model.fetch_result(f"{base}/missing.png")
        await model.aclose()


@pytest.mark.anyio
async def test_unreachable_upstream_is_a_502():
    model = EchoModel("echo/model", config={"api_base": "http://127.0.0.1:9", "timeout": 2})
    with pytest.raises(UpstreamError, match="Could not reach echo"):
        await model.request("POST", "/x")
    await model.aclose()
