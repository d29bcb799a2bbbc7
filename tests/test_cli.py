"""``retouch edit | generate | models | serve`` as a user runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import psutil
import pytest

from retouch.cli import main
from tests.images import decode, gradient, png, solid
from tests.servers import running_retouch


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))
    for name in ("RETOUCH_API_KEYS", "RETOUCH_MODELS_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_edit_in_process_writes_the_result(tmp_path, capsys):
    source = tmp_path / "in.png"
    source.write_bytes(png(gradient()))
    assert main(["edit", str(source), "-p", "flip horizontally", "-o", str(tmp_path / "out.png")]) == 0
    assert np.array_equal(decode((tmp_path / "out.png").read_bytes()), gradient()[:, ::-1])
    captured = capsys.readouterr()
    assert "out.png" in captured.out and "flip horizontal" in captured.err


def test_edit_two_images_n_two_and_jpeg_by_extension(tmp_path):
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    red.write_bytes(png(solid((220, 30, 30))))
    blue.write_bytes(png(solid((30, 30, 220))))
    out = tmp_path / "res.jpg"
    assert main(["edit", str(red), str(blue), "-p", "same style as the second image", "-n", "2", "-o", str(out)]) == 0
    for name in ("res-1.jpg", "res-2.jpg"):
        data = (tmp_path / name).read_bytes()
        assert data[:3] == b"\xff\xd8\xff"
        assert decode(data)[..., 2].mean() > decode(data)[..., 0].mean()


def test_edit_error_is_printed_not_raised(tmp_path, capsys):
    source = tmp_path / "in.png"
    source.write_bytes(png())
    assert main(["edit", str(source), "-p", "add a dragon"]) == 1
    assert "did not understand" in capsys.readouterr().err


def test_generate_in_process(tmp_path):
    assert main(["generate", "-p", "a 20x10 solid green image", "-o", str(tmp_path / "g.png")]) == 0
    pixels = decode((tmp_path / "g.png").read_bytes())
    assert pixels.shape == (10, 20, 3) and tuple(pixels[0, 0]) == (0, 128, 0)


def test_edit_against_a_server_with_a_key(tmp_path, make_settings):
    source = tmp_path / "in.png"
    source.write_bytes(png(gradient()))
    with running_retouch(make_settings(api_keys="sk-cli")) as base:
        code = main(["edit", str(source), "-p", "rotate 90", "--server", base, "--api-key", "sk-cli",
                     "-o", str(tmp_path / "r.png")])
        assert code == 0
        assert decode((tmp_path / "r.png").read_bytes()).shape[:2] == (64, 48)
        assert main(["edit", str(source), "-p", "rotate 90", "--server", base, "--api-key", "wrong"]) == 1


def test_models_lists_basic(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "retouch/basic" in out and "available" in out and "basic" in out


def test_serve_refuses_public_address_without_keys(tmp_path):
    run = subprocess.run([sys.executable, "-m", "retouch.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 2
    assert "RETOUCH_API_KEYS" in run.stderr and "--insecure-no-auth" in run.stderr


def test_serve_with_two_workers_runs_two_processes_that_answer_edits(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "retouch.cli", "serve", "--port", str(port),
                               "--workers", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while len(psutil.Process(server.pid).children()) < 2 or not _healthy(base):
            assert server.poll() is None and time.monotonic() < deadline, "workers never came up"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(4):
                answer = client.post("/v1/images/edits", data={"prompt": "grayscale"},
                                     files={"image": ("a.png", png(gradient()), "image/png")})
                assert answer.status_code == 200, answer.text
    finally:
        server.terminate()
        server.wait(30)


def test_serve_refuses_zero_workers(tmp_path):
    run = subprocess.run([sys.executable, "-m", "retouch.cli", "serve", "--workers", "0"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 2 and "--workers" in run.stderr


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_bad_models_file_is_a_clear_message(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - id: x\n    provider: no-such-backend\n")
    monkeypatch.setenv("RETOUCH_MODELS_FILE", str(bad))
    assert main(["models"]) == 2
    assert "unknown provider 'no-such-backend'" in capsys.readouterr().err


def test_bad_setting_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setenv("RETOUCH_MAX_PIXELS", "lots")
    assert main(["models"]) == 2
    assert capsys.readouterr().err.startswith("retouch: RETOUCH_MAX_PIXELS: ")


@pytest.mark.parametrize(("name", "value", "says"), [
    ("RETOUCH_DATABASE_URL", "mysql://app:hunter2@db.internal/retouch", "postgresql://"),
    ("RETOUCH_REDIS_URL", "http://app:hunter2@cache.internal", "redis://host:6379/0"),
])
def test_unusable_backing_urls_are_one_line_without_their_secrets(monkeypatch, capsys, name, value, says):
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"retouch: {name}: ") and says in err
    assert "hunter2" not in err and len(err.strip().splitlines()) == 1


def test_s3_storage_without_a_bucket_is_a_clear_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RETOUCH_STORAGE", "s3")
    assert main(["serve"]) == 2
    assert "RETOUCH_S3_BUCKET" in capsys.readouterr().err
