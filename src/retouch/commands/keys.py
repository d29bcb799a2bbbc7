"""``retouch keys create | list | revoke | usage`` and ``retouch db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys

from retouch.config import Settings, parse_duration
from retouch.db import Database
from retouch.db.keys import KeyStore
from retouch.db.usage import UsageLog
from retouch.errors import InvalidRequestError
from retouch.providers.registry import ModelRegistry


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="manage API keys (kept in the database)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; it is printed once, never stored")
    create.add_argument("--name", required=True)
    create.add_argument("--models", default=None, help="comma-separated model ids it may use (default: all)")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute")
    create.add_argument("--images-per-day", type=int, default=None)
    create.add_argument("--monthly-budget", type=float, default=None, help="US dollars per calendar month")
    create.set_defaults(run=lambda args: _run(_create(args)))
    listing = actions.add_parser("list", help="every key, without secrets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=lambda args: _run(_list(args)))
    update = actions.add_parser("update", help="change a key's name, models or limits ('none' lifts one)")
    update.add_argument("key", help="the key's id or its prefix (rt-…)")
    update.add_argument("--name", default=None)
    update.add_argument("--models", default=None, help="comma-separated model ids, or 'all'")
    update.add_argument("--rpm", type=_limit(int), default=_UNCHANGED)
    update.add_argument("--images-per-day", type=_limit(int), default=_UNCHANGED)
    update.add_argument("--monthly-budget", type=_limit(float), default=_UNCHANGED)
    update.set_defaults(run=lambda args: _run(_update(args)))
    revoke = actions.add_parser("revoke", help="revoke a key by id or prefix, at once")
    revoke.add_argument("key", help="the key's id or its prefix (rt-…)")
    revoke.set_defaults(run=lambda args: _run(_revoke(args)))
    usage = actions.add_parser("usage", help="requests, images, spend and errors per key")
    usage.add_argument("--key", default=None, help="one key's id or prefix")
    usage.add_argument("--since", default="30d", help="how far back: 24h, 7d, 30d, …")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(run=lambda args: _run(_usage(args)))
    db = sub.add_parser("db", help="the database schema")
    db_actions = db.add_subparsers(dest="action", required=True)
    db_actions.add_parser("upgrade", help="apply migrations (the server also does at start)").set_defaults(
        run=lambda args: _run(_upgrade(args)))


_UNCHANGED = object()


def _limit(kind):
    """An argparse type: a number, or 'none' to lift the limit."""
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _allowed_models(settings: Settings, text: str | None) -> list[str] | None:
    names = [m.strip() for m in text.split(",") if m.strip()] if text else None
    return ModelRegistry.from_files(settings.models_file, settings.default_model).canonical_ids(names)


def _run(work) -> int:
    return asyncio.run(work)


async def _opened() -> Database:
    database = Database(Settings().database)
    await database.upgrade()
    return database


async def _create(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        models = _allowed_models(settings, args.models)
    except InvalidRequestError as exc:
        print(f"retouch: --models: {exc.message}", file=sys.stderr)
        return 2
    database = await _opened()
    try:
        record, secret = await KeyStore(database).create(
            args.name, models=models, rpm=args.rpm, images_per_day=args.images_per_day,
            monthly_budget_usd=args.monthly_budget)
    finally:
        await database.aclose()
    print(secret)
    print(f"key {record.id} ({record.prefix}…) created for {record.name!r}; the key above is shown "
          "only now: store it safely.", flush=True)
    return 0


async def _list(args: argparse.Namespace) -> int:
    database = await _opened()
    try:
        records = await KeyStore(database).list()
    finally:
        await database.aclose()
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return 0
    for r in records:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        limits = ", ".join(f"{name} {value}" for name, value in (
            ("models", ",".join(r.allowed_models) if r.allowed_models else None), ("rpm", r.rpm),
            ("images/day", r.images_per_day), ("budget $", r.monthly_budget_usd)) if value is not None)
        print(f"{r.id:>4}  {r.prefix}…  {r.name}  [{state}]{'  ' + limits if limits else ''}")
    return 0


async def _update(args: argparse.Namespace) -> int:
    changes = {name: value for name, value in (("rpm", args.rpm), ("images_per_day", args.images_per_day),
                                               ("monthly_budget_usd", args.monthly_budget)) if value is not _UNCHANGED}
    if args.name is not None:
        changes["name"] = args.name
    if args.models is not None:
        try:
            changes["allowed_models"] = None if args.models == "all" else _allowed_models(Settings(), args.models)
        except InvalidRequestError as exc:
            print(f"retouch: --models: {exc.message}", file=sys.stderr)
            return 2
    database = await _opened()
    try:
        record = await KeyStore(database).update(args.key, **changes)
    finally:
        await database.aclose()
    if record is None:
        print(f"retouch: no single key matches {args.key!r}; see `retouch keys list`", file=sys.stderr)
        return 1
    print(f"key {record.id} ({record.prefix}…) updated: {json.dumps(record.as_dict())}")
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    database = await _opened()
    try:
        record = await KeyStore(database).revoke(args.key)
    finally:
        await database.aclose()
    if record is None:
        print(f"retouch: no single key matches {args.key!r}; see `retouch keys list`")
        return 1
    print(f"key {record.id} ({record.prefix}…) revoked")
    return 0


async def _usage(args: argparse.Namespace) -> int:
    database = await _opened()
    try:
        key_id = None
        if args.key is not None:
            record = await KeyStore(database).get(args.key)
            if record is None:
                print(f"retouch: no single key matches {args.key!r}")
                return 1
            key_id = record.id
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_duration(args.since))
        rows = await UsageLog(database).by_key(since, key_id)
    finally:
        await database.aclose()
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    print(f"{'key':<16} {'requests':>9} {'images':>7} {'spend $':>10} {'errors':>7}")
    for row in rows:
        print(f"{row.key_label:<16} {row.requests:>9} {row.images:>7} {row.spend_usd:>10.4f} {row.errors:>7}")
    return 0


async def _upgrade(args: argparse.Namespace) -> int:
    database = await _opened()
    await database.aclose()
    print(f"database at {database.safe_url} is up to date")
    return 0
