"""``retouch serve | edit | generate | models``."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import sys
from pathlib import Path

import httpx
from pydantic import ValidationError

from retouch.config import Settings, check_serve_safety
from retouch.providers.registry import ConfigError
from retouch.storage import StorageConfigError

_DEFAULT_OUT = {"edit": "edited.png", "generate": "generated.png"}
_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except ValidationError as exc:
        for error in exc.errors():  # one line per setting, named as the user sets it
            name = f"RETOUCH_{str(error['loc'][0]).upper()}" if error.get("loc") else "settings"
            print(f"retouch: {name}: {error['msg']}", file=sys.stderr)
        return 2
    except (ConfigError, StorageConfigError, OSError) as exc:
        # Configuration mistakes are the user's to fix: say what, not a traceback.
        print(f"retouch: {exc}", file=sys.stderr)
        return 2


# Operational command groups, each a module with ``add_parser(subparsers)`` that sets
# ``run`` on its parsers (``retouch keys …``, ``retouch storage …``, ``retouch doctor``).
COMMAND_MODULES: tuple[str, ...] = ("retouch.commands.keys", "retouch.commands.storage", "retouch.commands.doctor",
                                    "retouch.commands.ray")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retouch", description="Self-hosted image-editing API.")
    sub = parser.add_subparsers(dest="command")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--insecure-no-auth", action="store_true",
                       help="allow a non-loopback address without API keys")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the port (one per core suits a busy "
                            "gateway); each keeps its own routing health")
    serve.set_defaults(run=run_serve)
    for name, helptext in (("edit", "edit images"), ("generate", "generate an image")):
        command = sub.add_parser(name, help=helptext)
        if name == "edit":
            command.add_argument("images", nargs="+", type=Path, help="the image to edit first")
        command.add_argument("-p", "--prompt", required=True)
        command.add_argument("-m", "--model", default=None)
        command.add_argument("-n", type=int, default=1)
        command.add_argument("-s", "--size", default=None)
        command.add_argument("-o", "--out", type=Path, default=Path(_DEFAULT_OUT[name]))
        command.add_argument("--server", default=None, help="send to a running server instead")
        command.add_argument("--api-key", default=None)
        command.set_defaults(run=run_images)
    models = sub.add_parser("models", help="list the models and their availability")
    models.set_defaults(run=run_models)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from retouch.app import create_app
    from retouch.observability import logging_config, shared_across_workers

    settings = Settings()
    problem = check_serve_safety(settings, args.host, args.insecure_no_auth)
    if problem and asyncio.run(_managed_keys_exist(settings)):
        problem = None
    if problem:
        print(f"retouch: {problem}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("retouch: --workers must be at least 1", file=sys.stderr)
        return 2
    options = dict(host=args.host, port=args.port, proxy_headers=True,
                   log_config=logging_config(settings.log_format, secrets=_secrets(settings)),
                   timeout_graceful_shutdown=settings.shutdown_timeout or None)
    with shared_across_workers(args.workers):
        if args.workers == 1:
            uvicorn.run(create_app(settings), **options)
        else:  # each worker process builds its own app from the same environment
            uvicorn.run("retouch.app:create_app", factory=True, workers=args.workers, **options)
    return 0


def _secrets(settings: Settings) -> list[str]:
    """Values no log line may show, whatever shape they have."""
    return [*settings.api_key_list, settings.admin_key, settings.signing_key]


async def _managed_keys_exist(settings: Settings) -> bool:
    from retouch.db import Database
    from retouch.db.keys import KeyStore

    database = Database(settings.database)
    try:
        await database.upgrade()
        return await KeyStore(database).any_created()
    finally:
        await database.aclose()


def run_images(args: argparse.Namespace) -> int:
    fields = {"prompt": args.prompt, "n": str(args.n), "response_format": "b64_json",
              "output_format": _FORMATS.get(args.out.suffix.lower(), "png")}
    if args.model:
        fields["model"] = args.model
    if args.size:
        fields["size"] = args.size
    images = getattr(args, "images", [])
    if args.server:
        body = _call_server(args.server, args.api_key, fields, images)
    else:
        body = asyncio.run(_call_in_process(fields, images))
    if "error" in body:
        print(f"retouch: {body['error']['message']}", file=sys.stderr)
        return 1
    for path in _write_outputs(body, args.out):
        print(path)
    if body["data"] and body["data"][0].get("revised_prompt"):
        print(f"applied: {body['data'][0]['revised_prompt']}", file=sys.stderr)
    return 0


def _call_server(server: str, api_key: str | None, fields: dict, images: list[Path]) -> dict:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    route = "edits" if images else "generations"
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=600) as client:
        if images:
            files = [("image[]", (p.name, p.read_bytes())) for p in images]
            response = client.post(f"/v1/images/{route}", data=fields, files=files)
        else:
            response = client.post(f"/v1/images/{route}", json=fields)
    return response.json()


async def _call_in_process(fields: dict, images: list[Path]) -> dict:
    from retouch.api.requests import params_from
    from retouch.app import build_service
    from retouch.errors import RetouchError
    from retouch.protocol import EditRequest, UploadedImage

    service = build_service(Settings())
    params = params_from(fields)
    handles = [path.open("rb") for path in images]
    try:
        if images:
            request = EditRequest(params, [UploadedImage(h, h.name, "image") for h in handles])
            served = await service.edit(request, "")
        else:
            served = await service.generate(params, "")
        return served.response.model_dump()
    except RetouchError as exc:
        return exc.to_envelope()
    finally:
        for handle in handles:
            handle.close()
        await service.fetcher.aclose()


def _write_outputs(body: dict, out: Path) -> list[Path]:
    paths = []
    for index, item in enumerate(body["data"], start=1):
        path = out if len(body["data"]) == 1 else out.with_stem(f"{out.stem}-{index}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(item["b64_json"]))
        paths.append(path)
    return paths


def run_models(args: argparse.Namespace) -> int:
    from retouch.providers.registry import ModelRegistry

    settings = Settings()
    registry = ModelRegistry.from_files(settings.models_file, settings.default_model)
    for model in registry.models():
        availability = model.availability()
        status = "available" if availability.available else f"unavailable: {availability.reason} (fix: {availability.fix})"
        aliases = f" (aliases: {', '.join(model.aliases)})" if model.aliases else ""
        print(f"{model.id}{aliases}  [{model.provider}]  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
