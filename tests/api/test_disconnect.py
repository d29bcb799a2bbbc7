"""A client that hangs up cancels its job (so backends can cancel upstream work)."""

from __future__ import annotations

import json
import socket
from importlib.metadata import EntryPoint
from urllib.parse import urlparse

import retouch.providers.registry as registry
from tests.fake_providers import SlowModel
from tests.servers import running_retouch


def test_client_disconnect_cancels_the_job(make_settings, tmp_path, monkeypatch):
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - id: acme/slow\n    provider: test-slow\n")
    # Installed packages are the edge here: stand in one package's entry point.
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EntryPoint("test-slow", "tests.fake_providers:SlowModel", group)])
    SlowModel.started.clear()
    SlowModel.cancelled.clear()
    with running_retouch(make_settings(models_file=models)) as base:
        address = urlparse(base)
        body = json.dumps({"model": "acme/slow", "prompt": "anything"}).encode()
        with socket.create_connection((address.hostname, address.port)) as conn:
            conn.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            assert SlowModel.started.wait(10), "the job never started"
        # The socket is closed: the job must be cancelled, not left running for 60 s.
        assert SlowModel.cancelled.wait(10)
