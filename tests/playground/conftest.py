"""A real headless browser for the playground: Playwright for Python driving Debian's
Chromium (``/usr/bin/chromium``) against a real retouch server. Missing either skips
locally and fails in CI. Screenshots of each step go to ``test-artifacts/playground/``."""

from __future__ import annotations

import base64
import importlib.util
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import require

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"
# Root in containers needs --no-sandbox; the rest keeps Chromium off the (closed) network.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}

# Reads an <img> of the page back as RGBA bytes, through a canvas, as a user's browser drew it.
_READ_PIXELS = """(img) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < data.length; i += 8192) text += String.fromCharCode(...data.subarray(i, i + 8192));
  return { width: canvas.width, height: canvas.height, rgba: btoa(text) };
}"""


@pytest.fixture(scope="module")  # its event loop must be gone before async tests in other modules run
def browser():
    require(importlib.util.find_spec("playwright") is not None,
            "Playwright for Python is not installed (pip install playwright)")
    require(CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@dataclass
class Playground:
    """One browser tab on a retouch server, recording every request it makes."""

    page: object
    base: str
    name: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    shots: int = 0

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base + path)
        if path == "/":
            self.page.wait_for_function("() => document.querySelector('#model').options.length > 0 "
                                        "&& !document.querySelector('#model').textContent.includes('loading')")

    def shot(self, step: str) -> Path:
        self.shots += 1
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def submit_and_wait(self, results_before: int = 0) -> None:
        self.page.click("#submit")
        self.wait_for_results(results_before + 1)

    def wait_for_results(self, count: int) -> None:
        self.page.wait_for_function(
            f"() => document.querySelectorAll('#gallery .result img').length >= {count} && "
            "[...document.querySelectorAll('#gallery .result img')].every((img) => img.complete && img.naturalWidth)")

    def pixels(self, selector: str) -> np.ndarray:
        """The RGB pixels of an <img> on the page, read back through a canvas."""
        read = self.page.locator(selector).first.evaluate(_READ_PIXELS)
        rgba = np.frombuffer(base64.b64decode(read["rgba"]), np.uint8)
        return rgba.reshape(read["height"], read["width"], 4)[..., :3]

    def assert_stayed_on_origin(self) -> None:
        elsewhere = [url for url in self.requests
                     if not url.startswith((self.base + "/", "data:", "blob:"))]
        assert not elsewhere, f"requests left {self.base}: {elsewhere}"
        assert not self.failed, f"failed requests: {self.failed}"


@pytest.fixture
def open_playground(browser, request) -> Iterator:
    """``open_playground(base, viewport=..., clipboard=False)`` → a ``Playground`` tab."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    contexts = []

    def make(base: str, *, viewport: dict | None = None, clipboard: bool = False) -> Playground:
        context = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True,
                                      permissions=["clipboard-read", "clipboard-write"] if clipboard else [])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        tab = Playground(page, base, re.sub(r"\W+", "-", request.node.name).strip("-"))
        page.on("request", lambda req: tab.requests.append(req.url))
        page.on("response", lambda res: res.status == 404 and tab.failed.append(res.url))
        page.on("requestfailed", lambda req: tab.failed.append(f"{req.url} ({req.failure})"))
        return tab

    yield make
    for context in contexts:
        context.close()


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
