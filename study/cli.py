"""The command-line layer: one parser class, argument types, every shared option declared
once with one default, and the exit codes.

Each CLI module is a thin ``main(argv)``: parse -> a frozen settings object -> call.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from study.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from study.stores.disk import EXIT_DISK_FULL, as_disk_full, disk_full
from study.stores.locations import DEFAULT_TRACKING, default_tracking, parse_storage, parse_tracking
from study.stores.outage import EXIT_OUTAGE, OutageError
from study.stores.secrets import scrub, secrets_in

DATASETS = ("fashion-mnist", "mnist")
OBJECTIVE_CHOICES = ("ae", "classifier", "vae")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2, as argparse's)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def _number(cast, text: str, ok, expected: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: 0 < v < float("inf"), "a positive number")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v < float("inf"), "a number >= 0")


def _url_type(parse):
    def convert(text: str):
        try:
            return parse(text)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def add_study_options(p: argparse.ArgumentParser, *, storage_default: str) -> None:
    """--objective, --dataset, --study-name, --storage, --tracking-uri."""
    p.add_argument(
        "--objective",
        choices=OBJECTIVE_CHOICES,
        default="classifier",
        help="what to optimise (default: %(default)s)",
    )
    add_dataset_option(p, default="fashion-mnist")
    p.add_argument(
        "--study-name", default=None, help="study to create or resume (default: OBJECTIVE-DATASET)"
    )
    add_store_options(p, storage_default=storage_default)


def add_store_options(p: argparse.ArgumentParser, *, storage_default: str) -> None:
    """--storage, --tracking-uri."""
    p.add_argument(
        "--storage",
        metavar="URL",
        type=_url_type(parse_storage),
        default=storage_default,
        help="Optuna storage: sqlite:///FILE, postgresql://..., journal:FILE "
        "(several workers on one host) or 'memory' (default: %(default)s)",
    )
    add_tracking_option(p)


def add_tracking_option(p: argparse.ArgumentParser, *, from_config: bool = False) -> None:
    """--tracking-uri; ``from_config``: by default the one a config file names."""
    fallback = f"$MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING}"
    p.add_argument(
        "--tracking-uri",
        dest="tracking",
        metavar="URI",
        type=_url_type(parse_tracking),
        default=None if from_config else default_tracking(),
        help="MLflow tracking store: sqlite:///FILE (artifacts beside it in artifacts/), "
        "http(s)://HOST:PORT, or 'none' (default: "
        + (f"the config's, else {fallback})" if from_config else f"{fallback})"),
    )


def add_dataset_option(p: argparse.ArgumentParser, *, default: str | None) -> None:
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default=default,
        help=f"data set (default: {default or 'the config’s, else fashion-mnist'})",
    )


def add_data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory with the four IDX files (default: $STUDY_DATA_DIR, the cache, the "
        "Debian package, then a download)",
    )


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: %(default)s)",
    )


def add_seed_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=f"{what} (default: %(default)s)")


def quiet_libraries() -> None:
    """What a CLI process sets once: quieter Optuna and MLflow, MLflow's stdout off."""
    import mlflow  # noqa: F401 - configures its loggers on import: quiet them after that
    import optuna

    from study.stores.locations import use_fast_sqlite

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables..."
    # MLflow logs a database error with its traceback before raising it; the harness reports
    # (and retries) the failures itself, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # Per-trial models are pickled on purpose (with their code bundled); the registered ones
    # are torch.export programs. MLflow warns about pickle at every save.
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    # MLflow draws a progress bar per artifact download (ours are single small files) and
    # prints "View run ... at URL" for every run it ends on a tracking server.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # A tracking server that is away: fail fast (about 3 s) into the harness's own waiting
    # (``study.outage``), which says so and honours --outage-wait, not MLflow's ~2 minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # We run our own heartbeat thread around ask/tell (see scheduler.Heartbeat).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    use_fast_sqlite()


def entry(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """A CLI's ``main``: process set-up, and user errors as one line with exit code 2."""
    from models import ConfigError

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        quiet_libraries()
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            return main(argv)
        except (UsageError, ConfigError) as e:
            line = scrub(" ".join(str(e).split()), secrets_in(*args))  # always one line
            print(f"error: {line}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:  # before or between trials: nothing to close
            print("\nInterrupted.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except OutageError as e:  # a store away (or locked) for longer than --outage-wait
            print(f"error: {scrub(str(e), secrets_in(*args))}", file=sys.stderr)
            return EXIT_OUTAGE
        except Exception as e:  # a bug (its traceback, with no credential in it), or a full disk
            if disk_full(e):
                print(f"error: {as_disk_full(e)}", file=sys.stderr)
                return EXIT_DISK_FULL
            print(scrub(traceback.format_exc(), secrets_in(*args)), file=sys.stderr, end="")
            return 1

    return wrapper
