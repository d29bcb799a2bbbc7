"""The official ``openai`` npm client against a real retouch server (Node on these machines)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import require
from tests.images import decode, gradient, png
from tests.servers import running_retouch

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def node_client_dir(tmp_path_factory) -> Path:
    """A copy of tests/compat/js with the openai package installed from the npm registry."""
    require(shutil.which("node") is not None and shutil.which("npm") is not None, "node and npm are needed")
    work = tmp_path_factory.mktemp("js")
    for name in ("package.json", "compat.mjs"):
        shutil.copy(JS_DIR / name, work / name)
    installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=work, capture_output=True, text=True, timeout=300)
    require(installed.returncode == 0, f"npm install failed: {installed.stderr[-2000:]}")
    return work


def test_openai_npm_client(node_client_dir, make_settings, tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(png(gradient()))
    with running_retouch(make_settings(api_keys="sk-node")) as base:
        run = subprocess.run(["node", "compat.mjs", base, "sk-node", str(image)], cwd=node_client_dir,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        urls = report["several"]["urls"]
        assert len(urls) == 2 and all(u.startswith(base) for u in urls)
        gray = decode(httpx.get(urls[0]).content)
    flipped = decode(base64.b64decode(report["single"]["b64"]))
    assert np.array_equal(flipped, gradient()[:, ::-1])
    assert report["single"]["revised"] == "flip horizontal"
    assert np.array_equal(gray[..., 0], gray[..., 1])
    assert tuple(decode(base64.b64decode(report["generated"]["b64"]))[0, 0]) == (0, 0, 255)
    assert "retouch/basic" in report["models"]
    assert report["notFound"]["name"] == "NotFoundError" and report["notFound"]["status"] == 404
    assert report["badRequest"]["name"] == "BadRequestError" and report["badRequest"]["param"] == "n"
    assert report["badKey"]["name"] == "AuthenticationError" and report["badKey"]["status"] == 401
