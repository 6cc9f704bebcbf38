"""Each objective's baseline (a textbook configuration) runs as a new study's first trial."""

import optuna
import pytest
from optuna.trial import TrialState

from objectives import BASELINE_ATTR, OBJECTIVES, baseline_params
from study.reporting.report import baseline_line
from study.search.samplers import STARTUP_TRIALS, SeedAwareTPE
from study.search.warm import replay

from ..conftest import run_study
from ..execution.test_outcomes import AlwaysPrune
from ..helpers import Harness, load
from .test_search import _study_with

REPORT = "reports/classifier-fashion-mnist/report.md"


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("epochs", [1, 2, 8, 30])
def test_every_baseline_is_a_point_of_its_objectives_space(objective, epochs):
    params = baseline_params(objective, max_epochs=epochs)
    got = replay(OBJECTIVES[objective], params, max_epochs=epochs)
    assert got is not None, f"{objective}'s baseline is outside its space at --epochs {epochs}"
    assert got[0].train.epochs == epochs and got[0].train.optimizer == "adam"


def test_a_new_study_runs_the_baseline_first_and_records_it(classifier_study):
    study, _, _, runs = load(classifier_study)
    first = study.trials[0]
    assert first.user_attrs.get(BASELINE_ATTR) is True
    assert first.params == baseline_params("classifier", max_epochs=2)
    assert first.state == TrialState.COMPLETE
    assert [t.number for t in study.trials if BASELINE_ATTR in t.user_attrs] == [0]
    params = {r.data.params["trial_number"]: r.data.params for r in runs}
    assert params["0"].get(BASELINE_ATTR) == "True"  # filterable in MLflow
    assert BASELINE_ATTR not in params["1"]
    text = (classifier_study / REPORT).read_text()
    assert "Baseline (trial 0" in text or "The best trial is the baseline" in text


def test_no_baseline_leaves_it_out_and_a_resumed_study_gets_none(tmp_path):
    assert run_study(tmp_path, "--trials", "1", "--no-baseline") == 0
    assert run_study(tmp_path, "--trials", "2") == 0  # resumed: its history stays as it was
    study, _, _, _ = load(tmp_path)
    assert len(study.trials) == 2
    assert not any(BASELINE_ATTR in t.user_attrs for t in study.trials)
    assert study.trials[0].params != baseline_params("classifier", max_epochs=2)


def test_the_baseline_does_not_use_up_a_random_start_up_slot():
    sampler = SeedAwareTPE(seed=0)
    study = _study_with(sampler, 0, 0, STARTUP_TRIALS - 1)
    assert not sampler.random_phase(_with_baseline(study))  # 10 finished, no baseline
    study = _with_baseline(_study_with(sampler, 0, 0, STARTUP_TRIALS - 1), baseline=True)
    assert sampler.random_phase(study)  # the baseline + 9 random trials: still random


def _with_baseline(study, baseline=False):
    """``study`` plus one finished trial at the ae baseline (marked as such or not)."""
    fixed = optuna.trial.FixedTrial(baseline_params("ae", max_epochs=4))
    OBJECTIVES["ae"].suggest(fixed, max_epochs=4)
    attrs = {BASELINE_ATTR: True} if baseline else {}
    trial = optuna.trial.create_trial(
        params=fixed.params, distributions=fixed.distributions, value=0.2, user_attrs=attrs
    )
    study.add_trial(trial)
    return study


def test_the_baseline_is_never_pruned(tmp_path, small):
    h = Harness(tmp_path, small, pruner=AlwaysPrune())
    h.study.enqueue_trial(baseline_params("ae", max_epochs=2), user_attrs={BASELINE_ATTR: True})
    assert h.run(OBJECTIVES["ae"]).state == "COMPLETE"
    assert h.run(OBJECTIVES["ae"]).state == "PRUNED"  # a sampled trial is


def test_the_report_says_what_the_search_bought_over_the_baseline():
    study = optuna.create_study(direction="minimize")
    for value, attrs in ((0.030, {BASELINE_ATTR: True}), (0.020, {}), (0.025, {})):
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    (line,) = [s for s in baseline_line(study.trials, study.best_trial, "mse", False) if s]
    assert "trial 0" in line and "mse = 0.0300" in line and "0.0100 better" in line
    best_is_base = baseline_line(study.trials, study.trials[0], "mse", False)
    assert any("The best trial is the baseline" in s for s in best_is_base)
    pruned = optuna.create_study()
    pruned.add_trial(
        optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={BASELINE_ATTR: True})
    )
    assert baseline_line(pruned.trials, study.best_trial, "mse", False) == []
