"""Loading a study that exists: the read-only CLIs, the report and experiments open studies
through here, with a usage error naming the store when it is absent."""

from __future__ import annotations

import optuna

from study.errors import UsageError
from study.stores.disk import check_sqlite
from study.stores.locations import open_storage


def load_existing(ref, storage=None) -> optuna.Study | None:
    """The study ``ref`` (a ``StudyRef``) names, or None when its storage holds no such study."""
    storage = storage if storage is not None else open_storage(ref.storage)
    try:
        return optuna.load_study(study_name=ref.name, storage=storage)
    except KeyError:
        return None


def existing_study(ref) -> optuna.Study:
    """The study ``ref`` names, for the read-only CLIs; a usage error when it is absent."""
    if ref.storage.kind == "sqlite" and not ref.storage.path.is_file():
        raise UsageError(
            f"no Optuna storage at {ref.storage.redacted!r}; run python -m study.run "
            "first or pass the study's --storage"
        )
    if ref.storage.kind == "sqlite":
        check_sqlite(ref.storage.path, "Optuna storage", "--storage")
    study = load_existing(ref)
    if study is None:
        raise UsageError(
            f"no study named {ref.name!r} in {ref.storage.redacted}; pass "
            "--study-name (or --objective/--dataset) of an existing study"
        )
    return study
