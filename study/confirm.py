"""``python -m study.confirm``: is the best trial the best configuration, or a lucky seed?

Retrains the study's K best completed configurations S times each with other seeds (same
settings as their trials; ``--limit-train 0`` for all training images), ranks them by mean
validation value with its spread, optionally scores each run on the test split (``--test``),
and records every run in MLflow under one parent run. Resumable like any study (it is one:
``STUDY-confirm``). ``study.export --confirmed`` exports the best by mean.
"""

from __future__ import annotations

import argparse
import sys

from study import experiment_cli
from study.cli import Parser, entry, non_negative_int, positive_int
from study.experiments import confirmation
from study.reporting.experiments import confirmation_markdown
from study.settings import ConfirmSettings, from_namespace


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.confirm",
        description="Retrain the study's K best configurations S times each with new seeds "
        "and rank them by mean validation value.",
    )
    p.add_argument("--top", type=positive_int, default=3, help="configurations (default: 3)")
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="runs per configuration (default: 3)"
    )
    p.add_argument("--seed", type=non_negative_int, default=ConfirmSettings.seed,
                   help="first training seed (default: %(default)s)")  # fmt: skip
    p.add_argument("--test", action="store_true", help="also score each run on the test split")
    experiment_cli.add_options(p, limits_from_trials=True)
    return p


@entry
def main(argv: list[str] | None = None) -> int:
    exp = from_namespace(ConfirmSettings, build_parser().parse_args(argv))
    return experiment_cli.run(exp, confirmation.plan, confirmation_markdown)


if __name__ == "__main__":
    sys.exit(main())
