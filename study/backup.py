"""``python -m study.backup DIR``: a consistent copy of a study's stores, taken while it runs
(SQLite's online backup API), and ``--restore DIR`` to put one back (see
``study.stores.backup``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.cli import Parser, add_store_options, entry
from study.stores.locations import DEFAULT_STORAGE


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.backup",
        description="Copy a study's Optuna storage, MLflow store and artifacts into a new "
        "directory, consistently, while the study runs; or put such a copy back (--restore).",
    )
    p.add_argument("dir", metavar="DIR", type=Path, help="the backup's directory (a new one)")
    add_store_options(p, storage_default=DEFAULT_STORAGE)
    p.add_argument(
        "--no-artifacts",
        action="store_true",
        help="copy the two databases only, not the artifacts beside the MLflow store",
    )
    p.add_argument(
        "--restore",
        action="store_true",
        help="put the backup in DIR back in place of the stores (no study may be running on "
        "them; the files replaced are kept beside, renamed *.replaced-TIME)",
    )
    return p


@entry
def main(argv: list[str] | None = None) -> int:
    from study.stores import backup

    ns = build_parser().parse_args(argv)
    if ns.restore:
        for line in backup.restore(ns.storage, ns.tracking, ns.dir):
            print(line)
        return 0
    for c in backup.take(ns.storage, ns.tracking, ns.dir, artifacts=not ns.no_artifacts):
        print(f"copied {c.source} -> {c.copy} ({c.size / 1e6:.1f} MB)")
    print(f"Backup in {ns.dir}; restore it with: python -m study.backup {ns.dir} --restore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
