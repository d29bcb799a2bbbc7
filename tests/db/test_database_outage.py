"""The database going away and coming back under a running retouch: requests in between
get a retryable 503 that says so (never a 500), and service resumes by itself."""

from __future__ import annotations

import httpx

from retouch.cli import main
from tests.backing import create_database, restartable_postgres
from tests.conftest import require
from tests.images import gradient, png
from tests.servers import running_retouch


def test_a_database_restart_is_a_503_then_service_resumes(make_settings, capsys, monkeypatch, tmp_path):
    from tests.backing import postgres_bin

    require(bool(postgres_bin("initdb")), "PostgreSQL is not installed (apt-get install postgresql)")
    with restartable_postgres() as (base, stopped):
        url = create_database(base)
        monkeypatch.setenv("RETOUCH_DATABASE_URL", url)
        monkeypatch.setenv("RETOUCH_DATA_DIR", str(tmp_path / "var"))
        assert main(["keys", "create", "--name", "outage"]) == 0
        key = capsys.readouterr().out.splitlines()[0]
        with running_retouch(make_settings(database_url=url)) as server:
            def edit() -> httpx.Response:
                return httpx.post(f"{server}/v1/images/edits", headers={"authorization": f"Bearer {key}"},
                                  data={"prompt": "grayscale"}, timeout=30,
                                  files={"image": ("a.png", png(gradient(8, 8)), "image/png")})

            assert edit().status_code == 200
            with stopped():
                down = edit()
                assert down.status_code == 503, down.text
                assert down.json()["error"]["code"] == "database_unavailable"
                assert httpx.get(f"{server}/readyz").json()["checks"]["database"] != "ok"
            answers = [edit().status_code for _ in range(3)]  # pooled connections were lost
            assert answers[-1] == 200 and set(answers) <= {200, 503}
            assert httpx.get(f"{server}/readyz").status_code == 200
