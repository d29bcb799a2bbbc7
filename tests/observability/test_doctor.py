"""``retouch doctor``: what is wrong, the fix, and an exit code scripts can trust."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from retouch.cli import main
from tests.backing import free_port
from tests.storage.moto import CREDENTIALS, REGION, create_bucket

PROVIDER_KEYS = ("FAL_KEY", "OPENAI_API_KEY", "SIRAYA_API_KEY", "BFL_API_KEY", "GEMINI_API_KEY",
                 "STABILITY_API_KEY", "REPLICATE_API_TOKEN")


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("RETOUCH_")] + list(PROVIDER_KEYS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))


def doctor(capsys) -> tuple[int, str]:
    code = main(["doctor", "--timeout", "20"])
    return code, capsys.readouterr().out


def test_a_fresh_install_is_fine_and_told_which_keys_are_missing(capsys, tmp_path):
    code, out = doctor(capsys)
    assert code == 0, out
    assert "ok       database: sqlite+aiosqlite:///" in out and "ok       storage: " in out
    assert "ok       redis: not configured" in out
    assert "warning  providers: FAL_KEY is not set: 4 models unavailable" in out
    assert "fix: set FAL_KEY to your fal API key" in out
    assert re.search(r"everything retouch needs is in order \(\d+ warnings\)\.$", out.rstrip())
    assert not (tmp_path / "var" / "signing.key").exists()  # the server's to make, as its user


def test_a_provider_key_found_makes_its_models_available(capsys, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-test-key")
    code, out = doctor(capsys)
    assert code == 0 and "FAL_KEY" not in out


def test_unreachable_database_and_redis_fail_without_showing_passwords(capsys, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("RETOUCH_DATABASE_URL", f"postgresql://retouch:hunter2pg@127.0.0.1:{port}/retouch")
    monkeypatch.setenv("RETOUCH_REDIS_URL", f"redis://:hunter2redis@127.0.0.1:{port}/0")
    code, out = doctor(capsys)
    assert code == 1
    assert f"PROBLEM  database: postgresql+asyncpg://retouch:***@127.0.0.1:{port}/retouch did not answer" in out
    assert "fix: start the database or correct RETOUCH_DATABASE_URL" in out
    assert f"PROBLEM  redis: redis://:[redacted]@127.0.0.1:{port}/0 did not answer" in out
    assert "fix: start Redis there, or correct RETOUCH_REDIS_URL" in out
    assert "hunter2" not in out
    assert re.search(r"2 problems \(\d+ warnings\): retouch cannot serve as configured\.$", out.rstrip())


def test_real_postgres_and_redis_pass(capsys, monkeypatch, postgres_url, redis_url):
    monkeypatch.setenv("RETOUCH_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RETOUCH_REDIS_URL", redis_url)
    code, out = doctor(capsys)
    assert code == 0, out
    database = postgres_url.replace("postgresql://", "postgresql+asyncpg://")
    assert f"ok       database: {database} answers" in out and f"ok       redis: {redis_url} answers" in out


def test_bad_settings_are_named_with_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("RETOUCH_MAX_PIXELS", "lots")
    code, out = doctor(capsys)
    assert code == 1
    assert "PROBLEM  settings: RETOUCH_MAX_PIXELS: Input should be a valid integer" in out
    assert "fix: correct RETOUCH_MAX_PIXELS in the environment" in out


def test_a_broken_models_file_is_a_problem(capsys, monkeypatch, tmp_path):
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - id: x\n    provider: no-such-backend\n")
    monkeypatch.setenv("RETOUCH_MODELS_FILE", str(models))
    code, out = doctor(capsys)
    assert code == 1 and "PROBLEM  models: unknown provider 'no-such-backend'" in out
    assert "fix: correct the file RETOUCH_MODELS_FILE names" in out


def test_the_default_model_must_exist_and_be_available(capsys, monkeypatch):
    monkeypatch.setenv("RETOUCH_DEFAULT_MODEL", "no-such-model")
    code, out = doctor(capsys)
    assert code == 1 and "PROBLEM  models: the default model 'no-such-model'" in out
    assert "fix: set RETOUCH_DEFAULT_MODEL to one of: retouch/basic," in out
    monkeypatch.setenv("RETOUCH_DEFAULT_MODEL", "gpt-image-1")
    code, out = doctor(capsys)
    assert code == 1 and "PROBLEM  providers: OPENAI_API_KEY is not set: 2 models unavailable" in out


def test_unwritable_local_storage_is_a_problem(capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    monkeypatch.setenv("RETOUCH_DATA_DIR", str(blocker))
    code, out = doctor(capsys)
    assert code == 1 and "PROBLEM  storage: " in out and "RETOUCH_DATA_DIR" in out


def test_s3_bucket_reachable_or_missing(capsys, monkeypatch, s3_endpoint):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name, value in {"RETOUCH_STORAGE": "s3", "RETOUCH_S3_ENDPOINT_URL": s3_endpoint,
                        "RETOUCH_S3_REGION": REGION, "RETOUCH_S3_BUCKET": create_bucket(s3_endpoint)}.items():
        monkeypatch.setenv(name, value)
    code, out = doctor(capsys)
    assert code == 0 and "ok       storage: S3 bucket retouch-" in out
    monkeypatch.setenv("RETOUCH_S3_BUCKET", "no-such-bucket-here")
    code, out = doctor(capsys)
    assert code == 1 and "PROBLEM  storage: S3 bucket 'no-such-bucket-here' does not exist" in out
    assert "fix: create it, or set RETOUCH_S3_BUCKET" in out


def test_doctor_is_a_retouch_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "retouch.cli", "doctor"], capture_output=True, text=True, check=False,
                         timeout=120, cwd=tmp_path, env={**os.environ, "RETOUCH_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert run.returncode == 1 and "PROBLEM  redis" in run.stdout
