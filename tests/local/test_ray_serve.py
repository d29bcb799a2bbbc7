"""Local models on Ray Serve (``backend: ray``): a local Ray instance on CPU running tiny
pipelines, deployed by ``retouch ray deploy`` and driven through retouch's HTTP API."""

from __future__ import annotations

import base64
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import openai
import pytest
import yaml

from retouch.app import create_app
from retouch.cli import main
from retouch.config import Settings
from retouch.local.families import FAMILIES
from retouch.local.ray_serve import deployment_options
from retouch.local.spec import LocalSpec, SpecError
from retouch.providers.registry import ConfigError
from tests.backing import free_port
from tests.conftest import require
from tests.images import decode, gradient, png
from tests.servers import retouch_serve, running_retouch

APP = "retouch-test"
HAVE_RAY = importlib.util.find_spec("ray") is not None
# Both twins default to 100,000 steps, hours of work: a request that leaves ``steps`` out
# can only end by being cancelled. Every other request asks for a few steps.
ENDLESS = 100_000


def twin(model_id: str, weights: Path, backend: str, **fields) -> dict:
    return {"id": model_id, "provider": "diffusers", "pipeline": "instruct-pix2pix", "weights": str(weights),
            "dtype": "float32", "device": "cpu", "steps": ENDLESS, "backend": backend, **fields}


def write_models(path: Path, *entries: dict) -> Path:
    path.write_text(yaml.safe_dump({"models": list(entries)}))
    return path


def edit(base: str, *, timeout: float = 60, **fields) -> httpx.Response:
    data = {"prompt": "make it snowy", "response_format": "b64_json", "steps": "2",
            **{k: str(v) for k, v in fields.items()}}
    return httpx.post(f"{base}/v1/images/edits", data=data, timeout=timeout,
                      files={"image": ("a.png", png(gradient(64, 64)), "image/png")})


def pixels_of(answer: httpx.Response) -> list[np.ndarray]:
    assert answer.status_code == 200, answer.text
    return [decode(base64.b64decode(item["b64_json"])) for item in answer.json()["data"]]


def assert_alike(ours: list[np.ndarray], theirs: list[np.ndarray]) -> None:
    """Pixel for pixel, within 1 (a replica may use another number of CPU threads)."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


# -- the models file's ray: fields (no cluster needed) --------------------------------------


def spec(device: str = "cpu", **ray) -> LocalSpec:
    return LocalSpec(model_id="org/edit model", family=FAMILIES["instruct-pix2pix"], weights="w",
                     device=device, backend="ray", ray=ray)


def test_ray_fields_become_the_deployment_options():
    scaled = deployment_options(spec("auto", min_replicas=0, max_replicas=4, target_ongoing_requests=1,
                                     max_ongoing_requests=3, max_queued_requests=20))
    assert scaled["name"] == "org-edit-model"
    assert scaled["ray_actor_options"] == {"num_gpus": 1.0, "num_cpus": 1.0}  # auto: a GPU each
    assert scaled["autoscaling_config"] == {"min_replicas": 0, "max_replicas": 4, "target_ongoing_requests": 1.0}
    assert (scaled["max_ongoing_requests"], scaled["max_queued_requests"]) == (3, 20)
    assert "num_replicas" not in scaled
    fixed = deployment_options(spec("cpu", num_replicas=2, num_cpus=4))
    assert fixed["ray_actor_options"] == {"num_gpus": 0.0, "num_cpus": 4.0} and fixed["num_replicas"] == 2
    assert "autoscaling_config" not in fixed
    assert deployment_options(spec("cuda:1", num_gpus=0.5))["ray_actor_options"]["num_gpus"] == 0.5


def test_ray_fields_that_cannot_work_are_named_with_the_fix():
    with pytest.raises(SpecError, match=r"'max_replica' is not a field.*max_replicas"):
        deployment_options(spec(max_replica=2))
    with pytest.raises(SpecError, match="num_gpus must be float, not 'one'"):
        deployment_options(spec(num_gpus="one"))
    with pytest.raises(SpecError, match="Keep one or the other"):
        deployment_options(spec(num_replicas=2, max_replicas=4))


def test_a_bad_ray_field_stops_the_server_at_start(tmp_path, make_settings):
    models = write_models(tmp_path / "models.yaml", twin("m", tmp_path, "ray", ray={"gpus": 1}))
    with pytest.raises(ConfigError, match="m: ray: 'gpus' is not a field retouch knows"):
        create_app(make_settings(models_file=models))
    clash = write_models(tmp_path / "clash.yaml", twin("a/b", tmp_path, "ray"), twin("a b", tmp_path, "ray"))
    with pytest.raises(ConfigError, match="would be named 'a-b'"):
        create_app(make_settings(models_file=clash))


def test_the_api_starts_without_a_cluster_and_one_out_of_reach_is_a_503_saying_how_to_fix_it(tmp_path, tiny):
    models = write_models(tmp_path / "models.yaml", twin("ip2p-ray", tiny["instruct-pix2pix"], "ray"))
    nowhere = f"127.0.0.1:{free_port()}"
    env = {"RETOUCH_MODELS_FILE": str(models), "RETOUCH_RAY_ADDRESS": nowhere}
    with retouch_serve(tmp_path, env) as served:
        cards = {card["id"]: card for card in httpx.get(f"{served.base}/v1/models").json()["data"]}
        answer = edit(served.base, model="ip2p-ray")
    assert cards["ip2p-ray"]["available"]
    error = answer.json()["error"]
    assert answer.status_code == 503 and error["code"] == "model_unavailable" and error["param"] == "model"
    assert f"RETOUCH_RAY_ADDRESS={nowhere}" in error["message"] and "ray start --head" in error["message"]


# -- on a local Ray instance -----------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory) -> Iterator[Path]:
    """The models file (a ray model, its in-process twin, and another ray model), deployed
    on a local Ray instance by ``retouch ray deploy``; Serve and Ray are shut down after."""
    require(HAVE_RAY, "ray is not installed (pip install 'retouch[ray]')")
    import ray
    from ray import serve

    weights = tiny["instruct-pix2pix"]
    path = write_models(tmp_path_factory.mktemp("ray") / "models.yaml",
                        twin("ip2p-ray", weights, "ray", ray={"num_cpus": 1}), twin("ip2p-local", weights, "local"),
                        twin("ip2p-extra", weights, "ray", ray={"num_cpus": 0.5}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        try:
            # The command as an operator runs it: its own process, which exits after.
            deployed = subprocess.run(
                [sys.executable, "-m", "retouch.cli", "ray", "deploy", "--app", APP,
                 "--address", ray.get_runtime_context().gcs_address],
                env={**os.environ, "RETOUCH_MODELS_FILE": str(path)}, capture_output=True, text=True, timeout=300)
            assert deployed.returncode == 0, deployed.stderr
            assert f"ip2p-ray: deployed, application {APP}-ip2p-ray" in deployed.stdout
            yield path
        finally:
            serve.shutdown()
            ray.shutdown()


@pytest.fixture(scope="module")
def base(models, tmp_path_factory) -> Iterator[str]:
    """retouch serving the deployed models file, in this process (already joined to Ray)."""
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("var"), models_file=models, ray_app=APP)
    with running_retouch(settings) as url:
        yield url


def test_a_ray_model_edits_as_the_same_model_does_in_process(base):
    on_ray = edit(base, model="ip2p-ray", seed=7)
    in_process = edit(base, model="ip2p-local", seed=7)
    other_seed = edit(base, model="ip2p-ray", seed=8)
    assert_alike(pixels_of(on_ray), pixels_of(in_process))
    assert not np.array_equal(pixels_of(on_ray)[0], pixels_of(other_seed)[0])
    assert on_ray.headers["x-retouch-seed"] == "7"


def test_n_images_are_one_call_on_the_replica(base):
    on_ray = pixels_of(edit(base, model="ip2p-ray", seed=3, n=2))
    assert_alike(on_ray, pixels_of(edit(base, model="ip2p-local", seed=3, n=2)))
    assert not np.array_equal(on_ray[0], on_ray[1])


def test_partial_images_stream_from_the_replica(base):
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    events = list(client.images.edit(model="ip2p-ray", image=("a.png", png(gradient(80, 64)), "image/png"),
                                     prompt="make it snowy", stream=True, partial_images=2,
                                     extra_body={"seed": 5, "steps": 6}))
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    pictures = [decode(base64.b64decode(e.b64_json)) for e in events]
    assert {p.shape[:2] for p in pictures} == {(64, 80)}
    assert not np.array_equal(pictures[0], pictures[-1])


def test_a_client_that_hangs_up_stops_its_job_on_the_replica(base):
    address = urlparse(base)
    request = httpx.Client().build_request(  # no steps: the endless default
        "POST", f"{base}/v1/images/edits", data={"model": "ip2p-ray", "prompt": "x"},
        files={"image": ("a.png", png(gradient(64, 64)), "image/png")})
    with socket.create_connection((address.hostname, address.port)) as conn:
        head = "POST /v1/images/edits HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host") + "\r\n"
        conn.sendall(head.encode() + request.read())
        time.sleep(2.0)  # the endless job is running on the replica now
    # The replica runs one job at a time: this one waits until the endless one has stopped.
    assert edit(base, model="ip2p-ray", timeout=30).status_code == 200


def test_a_model_missing_from_the_deployment_is_a_503_saying_how_to_deploy_it(models, tiny, tmp_path):
    entries = [*yaml.safe_load(models.read_text())["models"], twin("ip2p-new", tiny["instruct-pix2pix"], "ray")]
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", ray_app=APP,
                        models_file=write_models(tmp_path / "models.yaml", *entries))
    with running_retouch(settings) as url:
        answer = edit(url, model="ip2p-new")
        still = edit(url, model="ip2p-ray")
    error = answer.json()["error"]
    assert answer.status_code == 503 and error["code"] == "model_unavailable"
    assert answer.headers["x-should-retry"] == "false"
    assert f"no deployment 'ip2p-new' in the application '{APP}-ip2p-new'" in error["message"]
    assert "retouch ray deploy" in error["message"]
    assert still.status_code == 200


def test_ray_status_lists_the_models_deployments_and_replicas(models, capsys):
    assert main(["ray", "status", "--app", APP]) == 0
    out = capsys.readouterr().out
    assert f"ip2p-ray: application {APP}-ip2p-ray RUNNING, deployment ip2p-ray HEALTHY, replicas: 1 RUNNING" in out
    assert "ip2p-local" not in out
    assert main(["ray", "status", "--app", "nothing-here"]) == 1
    assert "retouch ray deploy" in capsys.readouterr().err


def test_an_api_process_elsewhere_joins_the_cluster_on_its_first_job(models, base, tmp_path):
    import ray

    env = {"RETOUCH_MODELS_FILE": str(models), "RETOUCH_RAY_APP": APP,
           "RETOUCH_RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    with retouch_serve(tmp_path, env) as served:
        answer = edit(served.base, model="ip2p-ray", seed=11)
    assert_alike(pixels_of(answer), pixels_of(edit(base, model="ip2p-local", seed=11)))


def test_deploying_again_restarts_only_changed_models_and_removes_dropped_ones(models, tmp_path, capsys,
                                                                             monkeypatch):
    import ray
    from ray import serve

    def replicas(model_id: str) -> list[str]:
        prefix = f"SERVE_REPLICA::{APP}-{model_id}#"
        return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]

    before = replicas("ip2p-ray")
    kept = [e for e in yaml.safe_load(models.read_text())["models"] if e["id"] != "ip2p-extra"]
    monkeypatch.setenv("RETOUCH_MODELS_FILE", str(write_models(tmp_path / "models.yaml", *kept)))
    assert main(["ray", "deploy", "--app", APP]) == 0
    out = capsys.readouterr().out
    assert f"ip2p-ray: unchanged, application {APP}-ip2p-ray" in out and "ip2p-extra: removed" in out
    assert len(before) == 1 and replicas("ip2p-ray") == before  # not restarted
    assert f"{APP}-ip2p-extra" not in serve.status().applications
