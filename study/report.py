"""``python -m study.report``: write a study's report on demand (``study.reporting.report``
says what is in it; ``study.run`` writes it at the end unless ``--no-report``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.cli import Parser, add_study_options, entry, positive_int
from study.reporting.report import REPORT_DIR, write_report
from study.settings import ReportSettings, from_namespace
from study.stores.locations import DEFAULT_STORAGE, check_tracking, tracking_client


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.report",
        description="Write a study's plots and report (Markdown + self-contained HTML) and "
        "log them to its parent MLflow run.",
    )
    add_study_options(p, storage_default=DEFAULT_STORAGE)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder (default: reports/STUDY beside a local storage file, else mlruns/reports/STUDY)",
    )
    p.add_argument(
        "--iwae-samples",
        type=positive_int,
        default=ReportSettings.iwae_samples,
        metavar="K",
        help="importance samples of a VAE study's IWAE bound on test images (default: %(default)s)",
    )
    return p


@entry
def main(argv: list[str] | None = None) -> int:
    return report(from_namespace(ReportSettings, build_parser().parse_args(argv)))


def report(s: ReportSettings) -> int:
    from study.stores.studies import existing_study
    from study.tracking.runs import PARENT_ATTR

    study = existing_study(s)
    out = s.out or s.storage.reports_root / s.name
    client = parent = None
    if s.tracking.enabled:
        check_tracking(s.tracking)
        client = tracking_client(s.tracking)
        parent = study.user_attrs.get(PARENT_ATTR)
    path = write_report(
        study, out, client=client, parent_run_id=parent, iwae_samples=s.iwae_samples
    )
    print(f"Report: {path}  (and {path.with_suffix('.md')})")
    if parent:
        print(f"Logged to MLflow run {parent} under {REPORT_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
