"""Opening a study: create or resume it under the study lock, refuse one that belongs to
another objective or data set, attach its MLflow parent run, enqueue the seed systems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives import BASELINE_ATTR, SEED_ATTR, Objective, baseline_params
from objectives.seeds import IN_SPACE_ATTR, seed_params
from study.errors import UsageError
from study.execution.scheduler import counts
from study.search.costs import constraints
from study.search.samplers import make_pruner, make_sampler
from study.search.warm import enqueue_configs, other_study, warm_start
from study.settings import DATA_ATTR, LIMIT_TRAIN, LIMIT_VAL, RunSettings, record
from study.stores.locations import SERVER_SCHEMES, StudyLock, open_storage
from study.stores.outage import Outage
from study.stores.resilient import ResilientStorage
from study.stores.secrets import secrets_in
from study.stores.studies import load_existing
from study.tracking.runs import StudyTracker


@dataclass
class Session:
    """An open study and what the loop needs around it."""

    settings: RunSettings
    objective: Objective
    study: optuna.Study
    lock: StudyLock
    tracker: StudyTracker | None
    existing: bool
    before: dict[TrialState, int]
    enqueued: int = 0
    configs: int = 0
    warm: tuple[int, int] | None = None  # (copied, outside the space) by --warm-start
    baseline: bool = False  # this session enqueued the objective's baseline
    storage_outage: Outage | None = None
    data: Any = None  # what every trial sees (``Dataset.for_trials``)

    @property
    def finished_before(self) -> int:
        return self.before.get(TrialState.COMPLETE, 0) + self.before.get(TrialState.PRUNED, 0)

    def settled(self) -> bool:
        """Whether silent trials may be declared dead: not while this worker's database has
        been away within the grace period (every worker was cut off with it)."""
        outage = self.storage_outage
        return outage is None or outage.settled(self.settings.grace)


def say(line: str) -> None:
    print(line, flush=True)


def check_identity(study: optuna.Study, settings: RunSettings, objective: Objective) -> None:
    """Refuse to resume a study with another objective, direction, data set, or number of
    objectives (``--pareto``)."""
    attrs, name = study.user_attrs, settings.name
    if (
        attrs.get("objective", settings.objective) != settings.objective
        or study.directions[0].name.lower() != objective.direction
    ):
        raise UsageError(
            f"study {name!r} holds objective {attrs.get('objective')!r} "
            f"({study.directions[0].name.lower()}), not {settings.objective!r}; "
            "pick another --study-name or the study's own --objective"
        )
    had = attrs.get("pareto") if len(study.directions) > 1 else None
    if len(study.directions) > 1 and had is None:
        had = "?"
    if had != settings.pareto:
        kind = f"a two-objective study (--pareto {had})" if had else "a single-objective study"
        want = f"--pareto {settings.pareto}" if settings.pareto else "no --pareto"
        raise UsageError(
            f"study {name!r} is {kind}; it cannot be resumed with {want}: pick another "
            "--study-name or the study's own --pareto"
        )
    if attrs.get("dataset", settings.dataset) != settings.dataset:
        raise UsageError(
            f"study {name!r} was run on {attrs.get('dataset')!r}, not "
            f"{settings.dataset!r}; pick another --study-name or --dataset"
        )


def images_seen(study: optuna.Study) -> dict[str, int] | None:
    """The images per trial a study's trials saw, {"train": n, "val": n}: the study's own
    record, or (a study from before it was kept) its latest trial's; None if neither."""
    if DATA_ATTR in study.user_attrs:
        return study.user_attrs[DATA_ATTR]
    for t in reversed(study.get_trials(deepcopy=False)):
        if DATA_ATTR in t.user_attrs:
            return t.user_attrs[DATA_ATTR]
    return None


def with_limits(settings: RunSettings, study: optuna.Study | None, dataset) -> RunSettings:
    """``settings`` with the images per trial filled in: a limit not given is the resumed
    study's own (a new study's ``LIMIT_TRAIN`` / ``LIMIT_VAL``); one given that differs from
    the study's is refused, as its new trials would not compare with the earlier ones."""
    seen = images_seen(study) if study is not None else None
    limits = {}
    for key, split, default, does in (
        ("limit_train", "train", LIMIT_TRAIN, "trains each trial on {:,} training"),
        ("limit_val", "val", LIMIT_VAL, "scores each trial on {:,} validation"),
    ):
        given, full = getattr(settings, key), len(getattr(dataset, split))
        if seen is None or split not in seen:
            limits[key] = default if given is None else given
        elif given is None:
            limits[key] = 0 if seen[split] >= full else seen[split]
        elif (count := min(given or full, full)) == seen[split]:
            limits[key] = given
        else:
            option = f"--{key.replace('_', '-')}"
            raise UsageError(
                f"study {settings.name!r} {does.format(seen[split])} images, not {count:,} "
                f"({option} {given}): its trials would not compare; leave out {option} to "
                "resume it with its own, or pick another --study-name"
            )
    return dataclasses.replace(settings, **limits)


def warn_if_other_data(study: optuna.Study, data) -> None:
    """A study whose earlier trials saw other files than these (older harness versions
    accepted any IDX files) says so; its trials are then not comparable."""
    import sys

    before = study.user_attrs.get("data_digest")
    if before is not None and before != data.digest:
        print(
            f"warning: study {study.study_name!r} was run on {data.name} files with digest "
            f"{before}; the files found now ({data.location}) have digest {data.digest}",
            file=sys.stderr,
        )


NELBO_ESTIMATOR = "posterior-sample"
PARETO_NAMES = {"params": "parameters", "latent": "latent size", "kl": "kl"}


def warn_if_other_estimator(study: optuna.Study, settings: RunSettings) -> None:
    """VAE studies before the sample-based ELBO scored at the posterior mean (flattering)."""
    import sys

    if settings.objective != "vae" or "nelbo_estimator" in study.user_attrs:
        return
    if study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        print(
            f"warning: study {study.study_name!r}'s earlier trials scored the negative ELBO "
            "at the posterior mean, which reads ~9 nats per image lower than the ELBO at a "
            "posterior sample scored now; use a new --study-name to compare like with like",
            file=sys.stderr,
        )


def enqueue_seeds(study: optuna.Study, names: tuple[str, ...], objective, max_epochs) -> int:
    """Enqueue each named seed the study has not seen yet, with its parameter values where
    the search space can express it (it then informs the sampler); how many were added."""
    seen = {t.user_attrs.get(SEED_ATTR) for t in study.get_trials(deepcopy=False)}
    added = [n for n in names if n not in seen]
    for name in added:
        params = seed_params(objective, name, max_epochs=max_epochs)
        attrs = {SEED_ATTR: name, IN_SPACE_ATTR: params is not None}
        study.enqueue_trial(params or {}, user_attrs=attrs)
    return len(added)


def open_session(
    settings: RunSettings, objective: Objective, dataset, device, *, configs=()
) -> Session:
    """Create or resume the study; every store is locked before it is opened (two processes
    creating the same fresh schema would race, on SQLite and PostgreSQL alike). The session's
    ``settings`` have the images per trial filled in, and ``data`` is ``dataset`` cut to
    them."""
    storage_outage = Outage(
        f"the Optuna storage {settings.storage.redacted}",
        settings.outage_wait,
        say,
        max_delay=min(10.0, settings.heartbeat),  # heartbeats resume within one interval
        place=settings.storage.path,
    )
    lock = StudyLock(settings.storage, settings.name, outage=storage_outage)
    with lock():
        storage = open_storage(settings.storage, heartbeat=settings.heartbeat, grace=settings.grace)
        if settings.storage.kind in ("sqlite", *SERVER_SCHEMES):  # a database can go away
            storage = ResilientStorage(storage, storage_outage)
        study = load_existing(settings, storage)
        if study is not None:
            check_identity(study, settings, objective)
            warn_if_other_data(study, dataset)
            warn_if_other_estimator(study, settings)
        settings = with_limits(settings, study, dataset)
        data = dataset.for_trials(settings.limit_train, settings.limit_val, device)
        before = counts(study) if study is not None else {}
        existing = study is not None
        other = (
            other_study(storage, settings.warm_start, objective, settings.pareto is not None)
            if settings.warm_start
            else None
        )
        study = create_or_load(settings, objective, storage, offset=sum(before.values()))
        if DATA_ATTR not in study.user_attrs:  # what every later session resumes with
            study.set_user_attr(DATA_ATTR, data.images())
        if not existing:  # what only a study started by this version can vouch for
            study.set_user_attr("data_digest", data.digest)
            if settings.objective == "vae":
                study.set_user_attr("nelbo_estimator", NELBO_ESTIMATOR)
        tracker = make_tracker(settings, study, data, device)
        session = Session(settings, objective, study, lock, tracker, existing, before)
        session.storage_outage, session.data = storage_outage, data
        if not settings.is_worker:
            prepare_trials(session, configs, other)
    return session


def prepare_trials(session: Session, configs, other) -> None:
    """What runs or is known before sampling: enqueued configs, seed systems, another
    study's trials copied in (``--warm-start``), then a new study's baseline (unless it
    is already there, copied in with the same parameters)."""
    s, study, objective = session.settings, session.study, session.objective
    session.configs = enqueue_configs(study, configs) if configs else 0
    if s.enqueue_seeds:
        session.enqueued = enqueue_seeds(study, s.enqueue_seeds, objective, s.epochs)
    if other is not None:
        session.warm = warm_start(study, other, objective, s.epochs)
    if s.baseline and not session.existing:  # a resumed study's history stays as it was
        before = len(study.get_trials(deepcopy=False))
        params = baseline_params(objective.name, max_epochs=s.epochs)
        study.enqueue_trial(params, user_attrs={BASELINE_ATTR: True}, skip_if_exists=True)
        session.baseline = len(study.get_trials(deepcopy=False)) > before


def create_or_load(settings: RunSettings, objective: Objective, storage, *, offset: int):
    """The study with this session's sampler and pruner, its identity attributes filled in."""
    # A fresh seed per session (and worker): a resumed study must not replay its first
    # random trials.
    offset += 1000 * (settings.worker_index or 0)
    budget = None
    if settings.max_params is not None or settings.max_latent is not None:
        budget = constraints(settings.max_params, settings.max_latent)
    two = settings.pareto is not None  # Optuna cannot prune a multi-objective study
    study = optuna.create_study(
        study_name=settings.name,
        storage=storage,
        sampler=make_sampler(settings.sampler, settings.seed + offset, budget),
        pruner=make_pruner("none" if two else settings.pruner, settings.epochs),
        directions=[objective.direction, "minimize"] if two else [objective.direction],
        load_if_exists=True,
    )
    if two and "pareto" not in study.user_attrs:
        study.set_user_attr("pareto", settings.pareto)
    for key, value in (
        ("objective", settings.objective),
        ("dataset", settings.dataset),
        ("metric", objective.metric),
    ):
        if key not in study.user_attrs:  # also fills in a study created outside the CLI
            study.set_user_attr(key, value)
    if study.metric_names is None:  # plots and optuna-dashboard name the values
        names = [objective.metric] + ([PARETO_NAMES[settings.pareto]] if two else [])
        study.set_metric_names(names)
    return study


def make_tracker(settings: RunSettings, study, data, device) -> StudyTracker | None:
    if not settings.tracking.enabled:
        return None
    tracking = settings.tracking
    what = "store" if tracking.path is not None else "server"
    outage = Outage(
        f"the MLflow tracking {what} {tracking.redacted}", settings.outage_wait, say,
        place=tracking.path,
    )  # fmt: skip
    return StudyTracker(
        settings.tracking,
        study,
        settings={**record(settings), "device": str(device)},
        data=data,
        secrets=secrets_in(settings.storage.url, settings.tracking.url),
        outage=outage,
        storage=settings.storage,
        snapshot_every=settings.snapshot_every,
    )
