"""How the study searches: the sampler that proposes trials and the pruner that stops them.

The sampler is configured on purpose, not by library defaults (which changed between Optuna
versions): TPE, multivariate over **groups** of parameters that appear together (the space is
conditional: MLP or conv, a learning rate per optimiser), constant liar for parallel workers,
seeded, 10 random start-up trials. Seed systems (``--enqueue-seeds``) and the baseline are
not random, so they do not use up start-up slots; seeds the space cannot express carry no
parameters and are kept out of the sampler's history altogether.
"""

from __future__ import annotations

import optuna
from optuna.samplers import TPESampler

from objectives import BASELINE_ATTR, SEED_ATTR
from study.errors import UsageError
from study.stores import optuna_internals as internals

SAMPLERS = ("tpe", "random", "qmc", "tpe-optuna-defaults")
PRUNERS = ("median", "hyperband", "successive-halving", "percentile", "none")
PARETO_PRUNERS = ("pareto-halving", "none")  # for --pareto studies (study.search.pareto)
STARTUP_TRIALS = 10


def is_seed(trial) -> bool:
    """A seed system or the baseline: chosen, not sampled."""
    return SEED_ATTR in trial.user_attrs or BASELINE_ATTR in trial.user_attrs


def hidden(trial) -> bool:
    """A seed system the search space cannot express: no parameters, no observation."""
    return is_seed(trial) and not trial.params


class SeedAwareTPE(TPESampler):
    """TPE (multivariate, grouped, constant liar) that sees the study without the seed
    systems it cannot use, and starts modelling after ``STARTUP_TRIALS`` random trials
    whatever seeds came first."""

    def __init__(self, seed: int, constraints_func=None):
        super().__init__(
            seed=seed,
            n_startup_trials=STARTUP_TRIALS,
            multivariate=True,
            group=True,
            constant_liar=True,
            constraints_func=constraints_func,
        )

    def _seen(self, study):
        # Optuna's own per-ask snapshot of the trials (what TPE's start-up count reads too):
        # re-reading them for each parameter cost ~6 ms a read, ~80 ms a trial.
        trials = study._get_trials(deepcopy=False, use_cache=True)
        # Seeds with parameters are observations but not random trials; those without are
        # not seen at all (the view leaves them out).
        seeds = sum(is_seed(t) and not hidden(t) and t.state.is_finished() for t in trials)
        self._n_startup_trials = STARTUP_TRIALS + seeds
        return internals.StudyView(study, hidden) if any(hidden(t) for t in trials) else study

    def random_phase(self, study) -> bool:
        """Whether the next trial is still one of the random start-up trials."""
        view = self._seen(study)
        finished = view.get_trials(deepcopy=False, states=internals.FINISHED)
        return len(finished) < self._n_startup_trials

    def infer_relative_search_space(self, study, trial):
        return super().infer_relative_search_space(self._seen(study), trial)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(self._seen(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        view = self._seen(study)
        return super().sample_independent(view, trial, param_name, param_distribution)


def make_sampler(name: str, seed: int, constraints_func=None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return SeedAwareTPE(seed, constraints_func)
    if name == "tpe-optuna-defaults":  # what an unconfigured TPESampler does (for comparison)
        return TPESampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, constant_liar=True,
            constraints_func=constraints_func,
        )  # fmt: skip
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise UsageError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")


def pick_pruner(name: str | None, pareto: str | None) -> str:
    """``--pruner`` for the study's kind: by default successive halving, or for a
    ``--pareto`` study its multi-objective form; a pruner of the other kind is refused."""
    if name is None:
        return PARETO_PRUNERS[0] if pareto else "successive-halving"
    if pareto and name not in PARETO_PRUNERS:
        raise UsageError(
            f"--pruner {name} prunes single-objective studies; with --pareto {pareto} use "
            f"--pruner {PARETO_PRUNERS[0]} (the default there) or none"
        )
    if not pareto and name not in PRUNERS:
        raise UsageError(
            f"--pruner {name} prunes two-objective studies; add --pareto params|latent|kl, "
            f"or use one of {', '.join(PRUNERS)}"
        )
    return name


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        )
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}; choose one of {PRUNERS}")


def importance_evaluator():
    """fANOVA, named explicitly: Optuna's default evaluator changed (PED-ANOVA in 5.0)."""
    return optuna.importance.FanovaImportanceEvaluator(seed=0)
