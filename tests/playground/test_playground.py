"""The playground in a real browser: uploads, restyle, download, mask, errors, code, layout."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.images import gradient, photo, png, solid
from tests.playground.conftest import decode_image
from tests.servers import running_retouch

RESTYLE = "Replace the first image have the same image style as the second image."
BASE_PIXELS = photo(160, 120)


@pytest.fixture
def images(tmp_path) -> tuple[Path, Path]:
    """a.png (a photo to edit) and b.png (a blue style reference), as a user has them."""
    folder = tmp_path / "images"
    folder.mkdir()
    first, second = folder / "a.png", folder / "b.png"
    first.write_bytes(png(BASE_PIXELS))
    second.write_bytes(png(solid((30, 60, 210), 48, 48)))
    return first, second


def _thumb_names(tab) -> list[str]:
    return tab.page.locator("#thumbs .thumb .name").all_inner_texts()


def test_restyle_two_uploads_renders_changed_pixels_and_downloads(server, open_playground, images):
    tab = open_playground(server)
    tab.open("/")
    tab.shot("loaded")
    tab.page.set_input_files("#file-input", [str(p) for p in images])
    assert _thumb_names(tab) == ["a.png", "b.png"]
    tab.page.select_option("#model", "retouch/basic")
    tab.page.fill("#prompt", RESTYLE)
    tab.shot("two-images")
    tab.submit_and_wait()
    tab.shot("result")

    out = tab.pixels("#gallery .result img")
    assert out.shape == BASE_PIXELS.shape
    assert np.abs(out.astype(int) - BASE_PIXELS.astype(int)).mean() > 20  # restyled
    assert out[..., 2].mean() > out[..., 0].mean()  # toward the blue reference
    meta = tab.page.inner_text("#gallery .result .meta")
    assert "retouch/basic" in meta and "free" in meta
    assert "restyle" in tab.page.inner_text("#gallery .result .revised")
    assert "Done: 1 image" in tab.page.inner_text("#status")

    with tab.page.expect_download() as caught:
        tab.page.click("#gallery .result [data-act=download]")
    download = caught.value
    assert download.suggested_filename.endswith(".png")
    saved = decode_image(Path(download.path()).read_bytes())
    assert saved.shape == BASE_PIXELS.shape and np.array_equal(saved, out)

    tab.page.click("#gallery .result .view")
    assert tab.page.locator("#viewer").is_visible()
    tab.shot("full-view")
    tab.page.keyboard.press("Escape")
    assert tab.page.locator("#viewer").is_hidden()
    tab.page.click("#gallery .result [data-act=use]")  # chain: the result becomes the image to edit
    tab.page.wait_for_function("() => document.querySelectorAll('#thumbs .thumb').length === 3")
    assert _thumb_names(tab) == [download.suggested_filename, "a.png", "b.png"]
    tab.assert_stayed_on_origin()


def test_drop_paste_reorder_and_remove_inputs(server, open_playground):
    tab = open_playground(server)
    tab.open("/")
    first, second = (base64.b64encode(png(p)).decode() for p in (gradient(), solid((200, 0, 0))))
    tab.page.evaluate("""([first, second]) => {
      const file = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: "image/png" });
      const dropped = new DataTransfer();
      dropped.items.add(file(first, "dropped.png"));
      document.querySelector("#drop-zone").dispatchEvent(
        new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
      const pasted = new DataTransfer();
      pasted.items.add(file(second, "image.png"));
      document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));
      const url = new DataTransfer();
      url.setData("text/plain", "https://example.com/reference.png");
      document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: url, bubbles: true, cancelable: true }));
    }""", [first, second])
    assert _thumb_names(tab) == ["dropped.png", "image.png", "https://example.com/reference.png"]
    tab.shot("dropped-and-pasted")

    # Keyboard: focus "move later" on the first thumbnail and press Enter.
    tab.page.get_by_role("button", name="Move later: dropped.png").focus()
    tab.page.keyboard.press("Enter")
    assert _thumb_names(tab)[:2] == ["image.png", "dropped.png"]
    assert "edited" in tab.page.locator("#thumbs .thumb").first.inner_text()
    # Uploads stay before URLs, as the server reads them.
    assert tab.page.get_by_role("button", name="Move earlier: https://example.com/reference.png").is_disabled()
    tab.page.get_by_role("button", name="Remove: image.png").click()
    assert _thumb_names(tab) == ["dropped.png", "https://example.com/reference.png"]
    tab.shot("reordered")


def test_paint_mask_and_fill_changes_only_the_painted_area(server, open_playground, images):
    tab = open_playground(server)
    tab.open("/")
    tab.page.set_input_files("#file-input", str(images[0]))
    tab.page.select_option("#model", "retouch/basic")
    canvas = tab.page.locator("#mask-canvas")
    tab.page.wait_for_function("() => document.querySelector('#mask-canvas').width === 160")
    assert tab.page.locator("#mask-clear").is_enabled()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / 160
    tab.page.fill("#brush-size", "36")
    # A horizontal stroke through the middle, from x=40 to x=100 image pixels, at y=60.
    y = box["y"] + 60 * scale
    tab.page.mouse.move(box["x"] + 40 * scale, y)
    tab.page.mouse.down()
    for x in range(40, 101, 10):
        tab.page.mouse.move(box["x"] + x * scale, y)
    tab.page.mouse.up()
    tab.page.fill("#prompt", "fill the masked area with red")
    tab.shot("mask-painted")
    tab.page.click("#submit")
    tab.page.wait_for_function("() => /Done|failed/.test(document.querySelector('#status').textContent)")
    assert tab.page.locator("#error").is_hidden(), tab.page.inner_text("#error")
    tab.wait_for_results(1)
    tab.shot("mask-filled")

    out = tab.pixels("#gallery .result img").astype(int)
    half = 36 / 2  # the brush is 36 screen pixels wide: half of it either side of the line
    inside = out[60 - 2:60 + 3, 45:96]
    assert (np.abs(inside - [255, 0, 0]).max(axis=-1) <= 2).all()
    rows, cols = np.mgrid[0:120, 0:160]
    far = (np.abs(rows - 60) > half / scale + 3) | (cols < 40 - half / scale - 3) | (cols > 100 + half / scale + 3)
    assert np.abs(out - BASE_PIXELS.astype(int))[far].max() <= 2
    tab.assert_stayed_on_origin()


def test_mask_is_off_for_models_without_masks(server, open_playground, images):
    tab = open_playground(server)
    tab.open("/")
    tab.page.set_input_files("#file-input", str(images[0]))
    tab.page.select_option("#model", "retouch/upscale")
    assert tab.page.locator("#mask-clear").is_disabled()
    assert "does not take a mask" in tab.page.inner_text("#mask-note")
    tab.page.set_input_files("#file-input", str(images[1]))
    assert "at most 1 image" in tab.page.inner_text("#blockers")
    assert tab.page.locator("#submit").is_disabled()
    tab.shot("upscale-limits")


def test_wrong_key_shows_the_servers_401_message(make_settings, open_playground, images):
    with running_retouch(make_settings(api_keys="right-key-5c1d")) as base:
        tab = open_playground(base)
        tab.page.goto(base + "/")
        tab.page.wait_for_selector("#error:not([hidden])")
        assert "No API key was sent" in tab.page.inner_text("#error")
        tab.page.fill("#api-key", "wrong-key")
        tab.page.wait_for_function("() => document.querySelector('#error').textContent.includes('Incorrect API key')")
        tab.page.set_input_files("#file-input", str(images[0]))
        tab.page.fill("#prompt", "grayscale")
        tab.page.click("#submit")
        tab.page.wait_for_function("() => document.querySelector('#status').textContent.includes('failed')")
        assert tab.page.inner_text("#error") == (
            "Error 401 (invalid_api_key): Incorrect API key provided. Check the key and try again.")
        tab.shot("wrong-key")

        tab.page.fill("#api-key", "right-key-5c1d")
        tab.page.wait_for_selector("#model option[value='retouch/basic']", state="attached")
        tab.submit_and_wait()
        assert tab.page.locator("#error").is_hidden()
        assert tab.page.evaluate("localStorage.getItem('retouch.apiKey')") == "right-key-5c1d"


def test_copied_python_code_runs_as_written(make_settings, open_playground, images, tmp_path):
    key = "right-key-7a2e"
    with running_retouch(make_settings(api_keys=key)) as base:
        tab = open_playground(base, clipboard=True)
        tab.page.goto(base + "/")
        tab.page.fill("#api-key", key)
        tab.page.wait_for_selector("#model option[value='retouch/basic']", state="attached")
        tab.page.set_input_files("#file-input", [str(p) for p in images])
        tab.page.select_option("#model", "retouch/basic")
        tab.page.fill("#prompt", RESTYLE)
        tab.page.select_option("#output-format", "webp")
        tab.page.click("#show-code")
        tab.page.click("#tab-python")
        tab.page.click("#copy-code")
        tab.page.wait_for_function("() => document.querySelector('#status').textContent.includes('Copied')")
        code = tab.page.evaluate("navigator.clipboard.readText()")
        tab.shot("python-code")
        assert code == tab.page.inner_text("#code-text")
        assert f'base_url="{base}/v1"' in code and 'open("a.png", "rb"), open("b.png", "rb")' in code

        work = tmp_path / "run"
        work.mkdir()
        for image in images:
            (work / image.name).write_bytes(image.read_bytes())
        (work / "edit.py").write_text(code)
        run = subprocess.run([sys.executable, "edit.py"], check=False, cwd=work, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "RETOUCH_API_KEY": key})
    assert run.returncode == 0, run.stderr
    assert "saved result.webp" in run.stdout
    raw = (work / "result.webp").read_bytes()
    assert raw[8:12] == b"WEBP"
    assert decode_image(raw).shape == BASE_PIXELS.shape


def test_submit_can_be_cancelled_while_it_runs(server, open_playground, images):
    tab = open_playground(server)
    tab.open("/")
    held = []
    tab.page.route("**/v1/images/edits", lambda route: held.append(route))  # never answered: it hangs
    tab.page.set_input_files("#file-input", str(images[0]))
    tab.page.fill("#prompt", "grayscale")
    tab.page.click("#submit")
    tab.page.wait_for_function("() => /\\d+\\.\\d s/.test(document.querySelector('#elapsed').textContent)")
    assert tab.page.locator("#submit").is_disabled()
    tab.shot("in-progress")
    tab.page.click("#cancel")
    tab.page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Cancelled')")
    assert tab.page.locator("#cancel").is_hidden() and tab.page.locator("#submit").is_enabled()
    assert tab.page.locator("#gallery .result").count() == 0 and held


def test_keyboard_tab_to_submit_and_press_enter(server, open_playground, images):
    tab = open_playground(server)
    tab.open("/")
    tab.page.set_input_files("#file-input", str(images[0]))
    tab.page.fill("#prompt", "flip horizontally")
    tab.page.focus("#prompt")
    for _ in range(12):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("document.activeElement.id") == "submit":
            break
    assert tab.page.evaluate("document.activeElement.id") == "submit"
    tab.page.keyboard.press("Enter")
    tab.wait_for_results(1)
    out = tab.pixels("#gallery .result img")
    assert np.array_equal(out, BASE_PIXELS[:, ::-1])
    tab.shot("keyboard-result")


def test_phone_width_has_no_horizontal_overflow(server, open_playground, images):
    tab = open_playground(server, viewport={"width": 375, "height": 740})
    tab.open("/")
    tab.page.set_input_files("#file-input", [str(p) for p in images])
    tab.page.fill("#prompt", RESTYLE)
    tab.submit_and_wait()
    tab.page.click("#show-code")
    tab.page.click("#tab-javascript")
    overflow = "document.documentElement.scrollWidth - window.innerWidth"
    assert tab.page.evaluate(overflow) <= 0
    tab.shot("phone-playground")
    tab.open("/models")
    tab.page.wait_for_selector(".card")
    assert tab.page.evaluate(overflow) <= 0
    tab.shot("phone-models")
    tab.assert_stayed_on_origin()


def test_models_page_lists_every_model_with_price_and_fix(server, open_playground):
    import httpx

    models = httpx.get(f"{server}/v1/models").json()["data"]
    tab = open_playground(server)
    tab.open("/models")
    tab.page.wait_for_selector(".card")
    cards = tab.page.locator("#models .card")
    assert cards.count() == len(models)
    text = tab.page.inner_text("#models")
    for model in models:
        assert model["id"] in text and all(alias in text for alias in model["aliases"])
        if not model["available"]:
            assert model["fix"] in text
    basic = tab.page.locator("#model-retouch-basic")
    assert "free" in basic.inner_text() and "available" in basic.inner_text()
    priced = next(m for m in models if m["price_per_image"])
    card = tab.page.locator(".card", has=tab.page.locator(f"h2 code:text-is('{priced['id']}')"))
    assert f"${priced['price_per_image']:g}" in card.inner_text()
    assert f"{len(models)} models" in tab.page.inner_text("#summary")
    tab.shot("models")
