"""`zoo-ops hash PATH`: the truss content hash, as truss computes it."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("hash", help="print the truss content hash of a folder")
    p.add_argument("path", type=Path)
    p.add_argument(
        "--no-ignore", action="store_true", help="hash every file, ignoring .truss_ignore"
    )
    p.set_defaults(handler=run_hash)


def run_hash(args: argparse.Namespace) -> int:
    from zoo_ops.adapters.truss_files import truss_content_hash

    print(truss_content_hash(args.path, ignore=not args.no_ignore))
    return 0
