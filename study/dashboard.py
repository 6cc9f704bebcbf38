"""``python -m study.dashboard``: optuna-dashboard on a study's storage, with the artifact
store its trials' pictures are in (``study.optuna_artifacts``). optuna-dashboard is an
optional extra: ``pip install -e '.[ui]'``.
"""

from __future__ import annotations

import argparse
import sys

from study.cli import Parser, add_study_options, entry, positive_int
from study.errors import UsageError
from study.settings import StudyRef
from study.stores.locations import DEFAULT_STORAGE, tracking_client
from study.tracking.optuna_artifacts import artifact_store


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.dashboard",
        description="Start optuna-dashboard on a study's storage, with the artifact store its "
        "trials' pictures are in (pip install -e '.[ui]').",
    )
    add_study_options(p, storage_default=DEFAULT_STORAGE)
    p.add_argument("--port", type=positive_int, default=8080, help="default: %(default)s")
    p.add_argument("--host", default="127.0.0.1", help="bind address; loopback unless you mean it")
    return p


@entry
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        import optuna_dashboard
    except ImportError:
        raise UsageError(
            "optuna-dashboard is not installed; pip install -e '.[ui]' (an optional extra)"
        ) from None
    from study.stores.locations import open_storage
    from study.stores.studies import existing_study
    from study.tracking.runs import PARENT_ATTR

    ref = StudyRef(ns.objective, ns.dataset, ns.study_name, ns.storage, ns.tracking)
    study = existing_study(ref)
    client = tracking_client(ref.tracking) if ref.tracking.kind == "http" else None
    store = artifact_store(ref.storage, ref.tracking, client, study.user_attrs.get(PARENT_ATTR))
    print(f"optuna-dashboard for {ref.storage.redacted}: http://{ns.host}:{ns.port}/", flush=True)
    optuna_dashboard.run_server(
        open_storage(ref.storage), host=ns.host, port=ns.port, artifact_store=store
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
