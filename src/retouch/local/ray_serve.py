"""``backend: ray``: a local model served by Ray Serve, so a cluster of GPU machines runs it
and any number of API replicas send it jobs.

    retouch ray deploy → per ``backend: ray`` model a Serve application "<app>-<model>"
                         (RETOUCH_RAY_APP, default "retouch") with one deployment named
                         after the model, whose replicas load the pipeline as they start;
                         and the application "<app>", a directory of what was deployed.
                         Only models whose entry changed are redeployed; models gone
                         from the file are removed. No HTTP proxy: handles only.
    the API tier       → RayBackend: joins the cluster (RETOUCH_RAY_ADDRESS) on the first
                         job, not at start-up, and calls each model's deployment by handle

Serve places replicas on machines with free GPUs, scales them and queues requests: there is
no scheduler of ours. Inside a replica a job runs as it does in process (``runtime.load``
once, ``runtime.execute`` per job in one worker thread, callers in turns). A job is one
streaming call: the partial images it was asked for, then the ``Outcome``; PIL images
pickle losslessly, so a seed gives the same pixels as in process. Cancelling the waiting
task cancels the Ray request; the replica's generator is cancelled in turn and sets the
job's cancel flag, so the pipeline stops at its next step and the replica takes the next.

The entry's ``ray:`` fields (all optional; ``deployment_options`` checks them):

    num_gpus                 GPUs per replica (default 1; 0 when device: cpu); 0.5 shares one
    num_cpus                 CPUs per replica (default 1; Ray also caps torch's threads to it)
    accelerator_type         only on such GPUs, e.g. A100 or H100
    num_replicas             a fixed number of replicas (default 1), or autoscaling with:
    min_replicas, max_replicas, target_ongoing_requests, upscale_delay_s, downscale_delay_s
    max_ongoing_requests     jobs a replica holds at once (default 2: one runs, one waits)
    max_queued_requests      jobs waiting for a replica before Serve refuses more (default -1: no limit)
    max_replicas_per_node    at most this many replicas on one machine
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import re
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import anyio
from PIL import Image

from retouch.errors import ModelUnavailableError, ServiceUnavailableError
from retouch.local.families import Call
from retouch.local.queue import FairQueue
from retouch.local.runtime import Outcome, PreviewSink
from retouch.local.spec import LocalSpec, SpecError
from retouch.providers.base import AVAILABLE, Availability

DEFAULT_APP = "retouch"
# A job on a GPU takes seconds to minutes: a replica that holds many would keep them from
# replicas that free up or start meanwhile. One running and one waiting keeps it busy.
DEFAULT_MAX_ONGOING = 2
CONNECT_TIMEOUT_S = 5.0

_ACTOR_FIELDS = {"num_gpus": float, "num_cpus": float, "accelerator_type": str}
_SCALING_FIELDS = {"min_replicas": int, "max_replicas": int, "target_ongoing_requests": float,
                   "upscale_delay_s": float, "downscale_delay_s": float}
_DEPLOYMENT_FIELDS = {"num_replicas": int, "max_ongoing_requests": int, "max_queued_requests": int,
                      "max_replicas_per_node": int}
RAY_FIELDS = {**_ACTOR_FIELDS, **_SCALING_FIELDS, **_DEPLOYMENT_FIELDS}


# -- the models file's ray: fields ---------------------------------------------------------


def deployment_name(model_id: str) -> str:
    """The Serve deployment of ``model_id``: its id with anything but letters, digits,
    ``_``, ``.`` and ``-`` replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model_id).strip("-") or "model"


def model_app(app: str, model_id: str) -> str:
    """The Serve application of ``model_id`` among those ``app`` names."""
    return f"{app}-{deployment_name(model_id)}"


def deployment_options(spec: LocalSpec) -> dict[str, Any]:
    """``Deployment.options(...)`` for the model, from its entry's ``ray:`` fields;
    ``SpecError`` names a field that is unknown or of the wrong type."""
    fields = _checked_fields(spec)
    actor = {"num_gpus": fields.get("num_gpus", 0.0 if spec.device == "cpu" else 1.0),
             "num_cpus": fields.get("num_cpus", 1.0)}
    if "accelerator_type" in fields:
        actor["accelerator_type"] = fields["accelerator_type"]
    options: dict[str, Any] = {
        "name": deployment_name(spec.model_id), "ray_actor_options": actor,
        "max_ongoing_requests": fields.get("max_ongoing_requests", DEFAULT_MAX_ONGOING),
        **{name: fields[name] for name in ("max_queued_requests", "max_replicas_per_node") if name in fields},
    }
    scaling = {name: fields[name] for name in _SCALING_FIELDS if name in fields}
    if scaling and "num_replicas" in fields:
        raise SpecError(f"{spec.model_id}: ray: num_replicas fixes the number of replicas; "
                        f"{', '.join(scaling)} autoscale them. Keep one or the other.")
    if scaling:
        options["autoscaling_config"] = scaling
    else:
        options["num_replicas"] = fields.get("num_replicas", 1)
    return options


def _checked_fields(spec: LocalSpec) -> dict[str, Any]:
    if not isinstance(spec.ray, dict):
        raise SpecError(f"{spec.model_id}: ray: must be a mapping such as {{num_gpus: 1, max_replicas: 2}}")
    unknown = sorted(set(spec.ray) - set(RAY_FIELDS))
    if unknown:
        raise SpecError(f"{spec.model_id}: ray: {', '.join(map(repr, unknown))} "
                        f"{'is not a field' if len(unknown) == 1 else 'are not fields'} retouch knows; "
                        f"use {', '.join(RAY_FIELDS)}")
    fields = {}
    for name, value in spec.ray.items():
        kind = RAY_FIELDS[name]
        try:
            fields[name] = kind(value)
        except (TypeError, ValueError):
            raise SpecError(f"{spec.model_id}: ray: {name} must be {kind.__name__}, not {value!r}") from None
        if kind is not str and fields[name] < 0 and name != "max_queued_requests":
            raise SpecError(f"{spec.model_id}: ray: {name} must be 0 or more, not {value!r}")
    return fields


def ray_specs(registry: Any) -> list[LocalSpec]:
    """The ``backend: ray`` models of a registry, each checked; ``SpecError`` when two
    ids would make the same deployment name."""
    specs = [spec for model in registry.models()
             if (spec := getattr(model, "spec", None)) is not None and spec.backend == "ray"]
    names: dict[str, str] = {}
    for spec in specs:
        deployment_options(spec)
        _claim(names, spec.model_id)
    return specs


def _claim(names: dict[str, str], model_id: str) -> None:
    owner = names.setdefault(deployment_name(model_id), model_id)
    if owner != model_id:
        raise SpecError(f"{model_id}: its Ray deployment would be named {deployment_name(model_id)!r}, "
                        f"like {owner}'s; rename one of them")


def fingerprint(spec: LocalSpec) -> str:
    """What a replica is made from: the entry, its deployment options, retouch's version."""
    try:
        release = version("retouch")
    except PackageNotFoundError:
        release = "unknown"
    return hashlib.sha256(repr((spec, deployment_options(spec), release)).encode()).hexdigest()[:16]


# -- in the cluster ------------------------------------------------------------------------


class LocalModelReplica:
    """One Serve replica of a model: its pipeline, loaded as the replica starts (so Serve
    sends it jobs only once it is ready), and its jobs run one at a time."""

    def __init__(self, spec: LocalSpec) -> None:
        from retouch.local.runtime import load, resolve_device

        # Ray gives the replica its GPU(s) as CUDA_VISIBLE_DEVICES: the first is "cuda".
        self.spec = replace(spec, device="cuda") if spec.device.startswith("cuda:") else spec
        self.loaded = load(self.spec, resolve_device(self.spec.device))
        self.turns = FairQueue()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="retouch-replica")

    async def run(self, call: Call, seed: int, caller: str,
                  previews: frozenset[int]) -> AsyncIterator[tuple[int, list[Image.Image]] | Outcome]:
        """Yield ``(step, images)`` for each partial image, then the ``Outcome``."""
        from retouch.local.runtime import execute

        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[int, list[Image.Image]] | None] = asyncio.Queue()

        def on_preview(step: int, images: list[Image.Image]) -> None:  # in the worker thread
            loop.call_soon_threadsafe(updates.put_nowait, (step, images))

        async with self.turns.turn(caller):
            cancel = threading.Event()
            job = loop.run_in_executor(self.worker, execute, self.loaded, self.spec, call, seed, cancel,
                                       previews, on_preview if previews else None)
            job.add_done_callback(lambda _: updates.put_nowait(None))
            try:
                while (update := await updates.get()) is not None:
                    yield update
                yield job.result()
            finally:
                # Cancelled (the caller went away): stop at the next step, and hold the
                # turn until the pipeline has, so the next job finds the device free.
                cancel.set()
                await asyncio.wait([job])
                if not job.cancelled():
                    job.exception()  # seen: a stopped job ends in the runtime's Interrupted


class ModelDirectory:
    """The ``<app>`` application: each model id's application, deployment and fingerprint,
    as last deployed (what ``deploy`` compares with and ``retouch ray status`` shows)."""

    def __init__(self, models: dict[str, dict[str, str]]) -> None:
        self.deployed = models

    def models(self) -> dict[str, dict[str, str]]:
        return self.deployed


def deploy(specs: list[LocalSpec], app: str = DEFAULT_APP, *, force: bool = False) -> dict[str, str]:
    """Make the cluster that ``connect`` joined serve ``specs``: what happened to each model
    id ("deployed", "unchanged" or "removed"). A model is redeployed (its replicas restart)
    when its entry changed, or with ``force`` (new weights at the same place, say). Returns
    once every replica is ready; the applications stay when this process ends."""
    from ray import serve
    from ray.serve.api import RunTarget

    serve.start(proxy_location="Disabled")  # the API tier uses handles: no HTTP proxy, no port
    before, running = deployed(app), _running_apps()
    now = {spec.model_id: {"app": model_app(app, spec.model_id), "deployment": deployment_name(spec.model_id),
                           "fingerprint": fingerprint(spec)} for spec in specs}
    changed = [spec for spec in specs if force or before.get(spec.model_id) != now[spec.model_id]
               or now[spec.model_id]["app"] not in running]
    replica = serve.deployment(LocalModelReplica)
    if changed:
        serve.run_many([RunTarget(replica.options(**deployment_options(spec)).bind(spec),
                                  name=now[spec.model_id]["app"], route_prefix=None) for spec in changed])
    directory = serve.deployment(ModelDirectory).options(name="directory", ray_actor_options={"num_cpus": 0})
    serve.run(directory.bind(now), name=app, route_prefix=None)
    gone = [model_id for model_id in before if model_id not in now]
    for model_id in gone:
        serve.delete(before[model_id]["app"])
    fresh = {spec.model_id for spec in changed}
    return {**{m: "deployed" if m in fresh else "unchanged" for m in now}, **{m: "removed" for m in gone}}


def deployed(app: str) -> dict[str, dict[str, str]]:
    """What ``deploy`` last put on the cluster under ``app``: model id → its application,
    deployment and fingerprint; empty when nothing (or not retouch's directory) is there."""
    from ray import serve

    if app not in serve.status().applications:
        return {}
    try:
        return dict(serve.get_app_handle(app).models.remote().result(timeout_s=30))
    except Exception:  # still starting, failed, or another application of that name
        return {}


def _running_apps() -> set[str]:
    from ray import serve

    return {name for name, application in serve.status().applications.items()
            if str(getattr(application.status, "value", application.status)) in ("RUNNING", "DEPLOYING")}


# -- joining the cluster -------------------------------------------------------------------


class ClusterError(Exception):
    """No Ray cluster to talk to; the message names the address and the fix."""


_connecting = threading.Lock()


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` ("auto": the one this machine is a node of;
    host:port of the head; ray://host:10001) unless this process has already."""
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed in this environment. Fix: pip install 'retouch[ray]'") from None
    with _connecting:
        if ray.is_initialized():
            return
        problem = _unreachable(address)  # ray.init waits minutes for an address that never answers
        if problem is None:
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                return
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
        raise ClusterError(
            f"no Ray cluster answers at {address} ({problem}). Fix: start one (`ray start --head` "
            "on the head node, `ray start --address=HEAD:6379` on each GPU machine), deploy the "
            "models with `retouch ray deploy`, and set RETOUCH_RAY_ADDRESS to the head's "
            "host:6379 (or auto on a machine that is a node of the cluster)")


def _unreachable(address: str) -> str | None:
    """Why nothing listens at a host:port address, or None (also for "auto" and "local")."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        if not parts.hostname or not parts.port:
            return None
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S):
            return None
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


# -- in the API tier -----------------------------------------------------------------------


class RayBackend:
    """How a server reaches its ``backend: ray`` models: one per server, shared by them.
    ``run`` is ``LocalRuntime.run`` done by the model's deployment."""

    def __init__(self, address: str = "auto", app: str = DEFAULT_APP) -> None:
        self.address = address
        self.app = app
        self._handles: dict[str, Any] = {}
        self._claimed: dict[str, str] = {}  # deployment name → model id

    @classmethod
    def shared(cls, registry: Any, spec: LocalSpec) -> RayBackend:
        """The server's backend (made on first use; Ray is not touched until a job runs),
        after checking the model's ``ray:`` fields."""
        from retouch.providers.registry import ConfigError

        settings = registry.settings
        backend = registry.shared.setdefault("ray-backend", cls(
            getattr(settings, "ray_address", "") or "auto", getattr(settings, "ray_app", "") or DEFAULT_APP))
        try:
            deployment_options(spec)
            _claim(backend._claimed, spec.model_id)
        except SpecError as exc:
            raise ConfigError(str(exc)) from exc
        return backend

    def availability(self) -> Availability:
        """What this host needs for a ``backend: ray`` model: Ray. Its weights and GPUs are
        the cluster's (``retouch ray status``); a cluster out of reach is a 503 per job."""
        if importlib.util.find_spec("ray") is None:
            return Availability(False, "Ray is not installed where the API runs", "pip install 'retouch[ray]'")
        return AVAILABLE

    async def run(self, spec: LocalSpec, call: Call, *, seed: int, caller: str,
                  previews: frozenset[int] = frozenset(), on_preview: PreviewSink | None = None) -> Outcome:
        """Run ``call`` on the model's deployment; partial images go to ``on_preview``."""
        handle = await anyio.to_thread.run_sync(self._handle, spec.model_id)
        responses = handle.options(stream=True).run.remote(call, seed, caller, frozenset(previews))
        finished = False
        try:
            async for item in responses:
                if isinstance(item, Outcome):
                    finished = True
                    return item
                if on_preview is not None:
                    await anyio.to_thread.run_sync(on_preview, *item)
        except Exception as exc:
            translated = _translated(exc, spec.model_id)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if not finished:  # cancelled, or failed: stop the job on the replica
                responses.cancel()
        raise ServiceUnavailableError(f"the Ray deployment of {spec.model_id} ended the job without a result")

    def _handle(self, model_id: str) -> Any:
        """The model's deployment handle, joining the cluster first (in a thread: it blocks)."""
        name, app = deployment_name(model_id), model_app(self.app, model_id)
        if name in self._handles:
            return self._handles[name]
        try:
            connect(self.address)
        except ClusterError as exc:
            raise ModelUnavailableError(f"{model_id} runs on Ray Serve (RETOUCH_RAY_ADDRESS={self.address}) "
                                        f"and {exc}", param="model") from exc
        from ray import serve

        try:
            handle = serve.get_deployment_handle(name, app_name=app)
        except Exception as exc:  # KeyError: no such deployment; RayServeException: no Serve
            raise ModelUnavailableError(
                f"{model_id} runs on Ray Serve, and the cluster at RETOUCH_RAY_ADDRESS={self.address} has no "
                f"deployment {name!r} in the application {app!r} ({type(exc).__name__}). Fix: run "
                "`retouch ray deploy` with this models file (and RETOUCH_RAY_APP, if set, the same), "
                "then check it with `retouch ray status`", param="model") from exc
        return self._handles.setdefault(name, handle)


def _translated(exc: Exception, model_id: str) -> Exception:
    """The pipeline's own error for one raised in the replica (so it reads as in process);
    a 503 for a replica or cluster that failed."""
    try:
        from ray.exceptions import RayError, RayTaskError
    except ImportError:
        return exc
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, Exception):
        return exc.cause
    if isinstance(exc, RayError):
        return ServiceUnavailableError(f"the Ray replica running {model_id} failed ({type(exc).__name__}); "
                                       "try again shortly, and see `retouch ray status` if it persists")
    return exc
