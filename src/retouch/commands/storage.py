"""``retouch storage prune [--dry-run]``: apply the retention now, the same way a
running server does every few minutes (``storage.retention``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from retouch.config import Settings
from retouch.storage import (
    Storage,
    StorageConfigError,
    StorageUnavailableError,
    build_storage,
)
from retouch.storage.base import INPUTS, OUTPUTS
from retouch.storage.retention import Pruned, RetentionPolicy, prune


def add_parser(sub: argparse._SubParsersAction) -> None:
    storage = sub.add_parser("storage", help="stored outputs and lent inputs")
    actions = storage.add_subparsers(dest="action", required=True)
    pruning = actions.add_parser(
        "prune", help="delete outputs older than RETOUCH_RETENTION and lent inputs older "
                      "than RETOUCH_INPUT_LINK_TTL")
    pruning.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    pruning.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        storage = build_storage(settings)
        pruned = asyncio.run(_prune(storage, RetentionPolicy.from_settings(settings), args.dry_run))
    except (StorageConfigError, StorageUnavailableError) as exc:
        print(f"retouch: {exc}", file=sys.stderr)
        return 1
    print(_summary(pruned, settings, args.dry_run))
    return 0


async def _prune(storage: Storage, policy: RetentionPolicy, dry_run: bool) -> Pruned:
    await storage.check()  # says what is wrong (no bucket, no access) before anything else
    pruned = await prune(storage, policy, dry_run=dry_run)
    if dry_run:
        for area, names in pruned.names.items():
            for name in names:
                print(f"{area}/{name}")
    return pruned


def _summary(pruned: Pruned, settings: Settings, dry_run: bool) -> str:
    verb = "would delete" if dry_run else "deleted"
    outputs = (f"{len(pruned.names[OUTPUTS])} outputs older than {settings.retention}"
               if settings.retention_seconds > 0 else "no outputs (RETOUCH_RETENTION=0 keeps them)")
    inputs = f"{len(pruned.names[INPUTS])} lent inputs older than {settings.input_link_ttl:g} s"
    partial = "" if dry_run else f", {pruned.partial} partial writes"
    return f"{verb} {outputs}, {inputs}{partial}"
