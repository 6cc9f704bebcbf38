"""The search is configured on purpose: grouped multivariate TPE, seeds that inform it."""

import optuna
import pytest
from optuna.samplers import TPESampler
from optuna.trial import TrialState

from objectives import OBJECTIVES, SEED_ATTR, seed_spec
from objectives.seeds import IN_SPACE_ATTR, seed_params
from study.search.samplers import STARTUP_TRIALS, SeedAwareTPE, make_sampler

from ..conftest import run_study
from ..helpers import load

AE = OBJECTIVES["ae"]


def test_the_sampler_is_grouped_multivariate_tpe_with_constant_liar():
    sampler = make_sampler("tpe", 3)
    assert isinstance(sampler, TPESampler)
    assert sampler._multivariate and sampler._group and sampler._constant_liar
    assert sampler._n_startup_trials == STARTUP_TRIALS


def test_a_seed_that_fits_the_space_is_enqueued_with_its_parameter_values(tmp_path):
    seeds = ["s0-latent-classifier", "s2-mlp-ae-3d"]
    argv = ["--trials", "3", "--objective", "ae", "--enqueue-seeds", ",".join(seeds)]
    assert run_study(tmp_path, *argv) == 0
    study, *_ = load(tmp_path, "ae-fashion-mnist")
    s0, s2 = study.trials[:2]
    assert s0.user_attrs[IN_SPACE_ATTR] is True
    assert s0.params == seed_params(AE, "s0-latent-classifier", max_epochs=2)
    assert s0.params["ae.mlp.width0"] == 256 and s0.params["ae.latent_dim"] == 32
    assert s0.user_attrs["spec"] == seed_spec("ae", "s0-latent-classifier", max_epochs=2).to_dict()
    # S2's 12-wide layer is below the space's smallest width: it trains as written, no params.
    assert s2.user_attrs[IN_SPACE_ATTR] is False and s2.params == {}
    assert s2.user_attrs["spec"] == seed_spec("ae", "s2-mlp-ae-3d", max_epochs=2).to_dict()


def _study_with(sampler, seeds_with_params, seeds_without, sampled):
    """A study on the ae space: finished seed trials first (with and without parameter
    values), then ``sampled`` trials drawn at random elsewhere, all with arbitrary values."""
    study = optuna.create_study(sampler=sampler)
    for _ in range(seeds_with_params):
        fixed = optuna.trial.FixedTrial(seed_params(AE, "s0-latent-classifier", max_epochs=4))
        AE.suggest(fixed, max_epochs=4)
        attrs = {SEED_ATTR: "s0", IN_SPACE_ATTR: True}
        study.add_trial(
            optuna.trial.create_trial(
                params=fixed.params, distributions=fixed.distributions, value=0.5,
                user_attrs=attrs,
            )
        )  # fmt: skip
    for _ in range(seeds_without):  # a very good seed the space cannot express
        attrs = {SEED_ATTR: "s2", IN_SPACE_ATTR: False}
        study.add_trial(optuna.trial.create_trial(value=0.01, user_attrs=attrs))
    elsewhere = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(sampled):
        drawn = elsewhere.ask()
        AE.suggest(drawn, max_epochs=4)
        elsewhere.tell(drawn, 0.0)
        study.add_trial(
            optuna.trial.create_trial(
                params=drawn.params, distributions=drawn.distributions, value=0.1 + 0.01 * i
            )
        )
    return study


def test_seeds_do_not_use_up_the_random_start_up_trials():
    sampler = SeedAwareTPE(seed=0)
    study = _study_with(sampler, 1, 1, STARTUP_TRIALS - 1)
    assert sampler.random_phase(study)  # 2 seeds + 9 random trials: still random
    study = _study_with(sampler, 1, 1, STARTUP_TRIALS)
    assert not sampler.random_phase(study)


class _Spy(SeedAwareTPE):
    def __init__(self, base):
        self.__dict__.update(base.__dict__)
        self.independent = []

    def sample_independent(self, study, trial, name, dist):
        self.independent.append(name)
        return super().sample_independent(study, trial, name, dist)


@pytest.mark.parametrize("grouped", [True, False], ids=["harness", "ungrouped-multivariate"])
def test_a_seed_outside_the_space_does_not_make_the_sampler_independent(grouped):
    """A finished seed trial with no parameters empties the search space every trial shares;
    plain multivariate TPE then samples every parameter independently."""
    if grouped:
        sampler = _Spy(SeedAwareTPE(seed=0))
    else:

        class Plain(TPESampler):
            independent: list

            def sample_independent(self, study, trial, name, dist):
                self.independent.append(name)
                return super().sample_independent(study, trial, name, dist)

        sampler = Plain(seed=0, multivariate=True, n_startup_trials=STARTUP_TRIALS)
        sampler.independent = []
    study = _study_with(sampler, 0, 1, STARTUP_TRIALS + 2)
    sampler.independent.clear()
    trial = study.ask()
    AE.suggest(trial, max_epochs=4)
    shared = {"ae.recon_loss", "ae.arch", "ae.activation", "train.optimizer"}
    if grouped:
        assert not shared & set(sampler.independent), sampler.independent
    else:
        assert shared <= set(sampler.independent)


@pytest.mark.parametrize("phase", ["random", "tpe"])
def test_sampling_a_trial_reads_the_study_once_per_ask_not_once_per_parameter(tmp_path, phase):
    """The seed-aware view reads Optuna's per-ask snapshot of the trials: sampling a trial's
    ~20 parameters must not re-read every trial from the storage for each one (on SQLite,
    ~6 ms a read). Optuna's own reads stay: the queue of enqueued trials at ``ask``, and,
    once TPE models, its constant liar's fresh read of the running trials per group."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    sampler = SeedAwareTPE(seed=0)
    study = optuna.create_study(storage=storage, sampler=sampler)
    for i in range(2 if phase == "random" else STARTUP_TRIALS + 1):
        trial = study.ask()
        AE.suggest(trial, max_epochs=4)
        study.tell(trial, 0.1 + 0.01 * i)
    reads = []
    inner = study._storage.get_all_trials

    def counted(*args, **kwargs):
        reads.append(kwargs.get("states"))
        return inner(*args, **kwargs)

    study._storage.get_all_trials = counted
    trial = study.ask()
    AE.suggest(trial, max_epochs=4)
    assert len(trial.params) >= 8
    with_running = [s for s in reads if s is not None and TrialState.RUNNING in s]
    others = [s for s in reads if s is None or TrialState.RUNNING not in s]
    assert others == [(TrialState.WAITING,), None], reads  # the queue, the snapshot
    assert phase == "tpe" or not with_running
