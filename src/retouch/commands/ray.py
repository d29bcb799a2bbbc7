"""``retouch ray deploy | status``: the ``backend: ray`` models of the models file as Ray
Serve applications (``local/ray_serve.py``)."""

from __future__ import annotations

import argparse
import sys

from retouch.config import Settings
from retouch.local.spec import SpecError
from retouch.providers.registry import ConfigError, ModelRegistry


def add_parser(sub: argparse._SubParsersAction) -> None:
    ray = sub.add_parser("ray", help="serve the backend: ray models on a Ray cluster")
    actions = ray.add_subparsers(dest="action", required=True)
    deploy = actions.add_parser("deploy", help="deploy the backend: ray models of the models file: "
                                               "changed ones redeployed, removed ones deleted")
    status = actions.add_parser("status", help="the deployed models and their replicas")
    for command in (deploy, status):
        command.add_argument("--address", default=None,
                             help="the cluster: the head's host:6379 (default RETOUCH_RAY_ADDRESS, auto)")
        command.add_argument("--app", default=None,
                             help="name of retouch's Serve applications (default RETOUCH_RAY_APP, retouch)")
    deploy.add_argument("--force", action="store_true",
                        help="redeploy every model, changed or not (new weights at the same path, say)")
    deploy.set_defaults(run=run_deploy)
    status.set_defaults(run=run_status)


def run_deploy(args: argparse.Namespace) -> int:
    from retouch.local.ray_serve import ClusterError, connect, deploy, deployment_options, model_app, ray_specs

    settings = Settings()
    address, app = args.address or settings.ray_address, args.app or settings.ray_app
    registry = ModelRegistry.from_files(settings.models_file, settings.default_model, settings)
    try:
        specs = ray_specs(registry)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    if not specs:
        print(f"retouch: no model in {settings.models_file or 'the catalogue'} has backend: ray; "
              "nothing to deploy (set RETOUCH_MODELS_FILE)", file=sys.stderr)
        return 1
    try:
        connect(address)
        done = deploy(specs, app, force=args.force)
    except (ClusterError, RuntimeError) as exc:  # serve: RuntimeError when a replica cannot start
        print(f"retouch: {exc}", file=sys.stderr)
        return 1
    for spec in specs:
        options = deployment_options(spec)
        replicas = options.get("autoscaling_config") or {"replicas": options.get("num_replicas")}
        print(f"{spec.model_id}: {done[spec.model_id]}, application {model_app(app, spec.model_id)}, "
              f"{_fields(options['ray_actor_options'])} per replica, {_fields(replicas)}")
    for model_id in sorted(m for m, what in done.items() if what == "removed"):
        print(f"{model_id}: removed (no longer in the models file)")
    print(f"the API tier reaches them with RETOUCH_RAY_ADDRESS={address} RETOUCH_RAY_APP={app}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from retouch.local.ray_serve import ClusterError, connect, deployed

    settings = Settings()
    address, app = args.address or settings.ray_address, args.app or settings.ray_app
    try:
        connect(address)
        from ray import serve

        models, applications = deployed(app), serve.status().applications
    except (ClusterError, RuntimeError) as exc:
        print(f"retouch: {exc}", file=sys.stderr)
        return 1
    if not models:
        print(f"retouch: the cluster at {address} has no retouch models under {app!r}; run `retouch ray deploy`",
              file=sys.stderr)
        return 1
    for model_id, where in sorted(models.items()):
        application = applications.get(where["app"])
        if application is None:
            print(f"{model_id}: application {where['app']} missing; run `retouch ray deploy`")
            continue
        deployment = application.deployments.get(where["deployment"])
        replicas = ", ".join(f"{count} {_text(state)}" for state, count in
                             (deployment.replica_states.items() if deployment else ())) or "none"
        print(f"{model_id}: application {where['app']} {_text(application.status)}, deployment "
              f"{where['deployment']} {_text(deployment.status) if deployment else 'missing'}, "
              f"replicas: {replicas}{_note(application.message or (deployment.message if deployment else ''))}")
    return 0


def _text(status) -> str:
    return str(getattr(status, "value", status))


def _note(message: str) -> str:
    return f" - {message}" if message else ""


def _fields(values: dict) -> str:
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in values.items())
