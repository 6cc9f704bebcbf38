"""``python -m study.ablate``: does one factor matter, all else equal?

Takes a trial's configuration (default: the study's best), varies one factor over its levels
and keeps everything else fixed, and trains every level x seed to its full epoch budget,
unpruned. The runs are an Optuna study of their own (``STUDY-ablate-FACTOR``, resumable, any
number of workers) and MLflow runs (``ablate-FACTOR-LEVEL-seedK``) under one parent run in
the study's experiment. The answer is a table per level and, for each level, its paired
difference against the trial's own level with a 95% interval over seeds.
"""

from __future__ import annotations

import argparse
import sys

from study import experiment_cli
from study.cli import Parser, entry, non_negative_int, positive_int
from study.experiments import ablation, factors
from study.reporting.experiments import ablation_markdown
from study.settings import AblateSettings, RunSettings, from_namespace


def build_parser() -> argparse.ArgumentParser:
    d = RunSettings()
    p = Parser(
        prog="python -m study.ablate",
        description="Vary one factor of a trial's configuration, everything else fixed, and "
        "train each level with several seeds; prints each level's mean and its difference "
        "from the trial's own level with a 95% interval.",
    )
    p.add_argument("--factor", required=True, help=f"one of {', '.join(factors.FACTORS)}")
    p.add_argument("--trial", type=non_negative_int, default=None, help="default: the best")
    p.add_argument(
        "--levels",
        default=None,
        help="comma-separated levels (default: all of the factor's; latent: 2,4,8,16,32); "
        "the trial's own level is always run",
    )
    p.add_argument(
        "--seeds", type=positive_int, default=3, help="runs per level (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="first training seed (default: 0)"
    )
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="epochs per run "
                   "(default: %(default)s)")  # fmt: skip
    experiment_cli.add_options(p)
    return p


@entry
def main(argv: list[str] | None = None) -> int:
    exp = from_namespace(AblateSettings, build_parser().parse_args(argv))
    return experiment_cli.run(exp, ablation.plan, ablation_markdown)


if __name__ == "__main__":
    sys.exit(main())
