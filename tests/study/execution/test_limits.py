"""The images per trial belong to the study: a resumed study keeps its own unless told
otherwise, and a different number given for it is refused before anything is written."""

from types import SimpleNamespace

import optuna
import pytest

from study import run
from study.errors import UsageError
from study.execution.session import with_limits
from study.settings import DATA_ATTR, LIMIT_TRAIN, LIMIT_VAL, RunSettings

from ..conftest import copy_stores
from ..helpers import load

NAME = "classifier-fashion-mnist"


def _stores(path):
    return [
        "--storage",
        f"sqlite:///{path}/optuna.db",
        "--tracking-uri",
        "none",
        "--no-report",
        "--no-refit",
    ]


def _snapshot(path):
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")
    trials = [(t.number, t.state, t.user_attrs, t.system_attrs) for t in study.trials]
    return study.user_attrs, trials


def test_a_resumed_study_trains_and_scores_on_its_own_images(classifier_study, tmp_path):
    path = copy_stores(classifier_study, tmp_path / "s")
    study, *_ = load(path)
    assert study.user_attrs[DATA_ATTR] == {"train": 300, "val": 200}  # kept at creation
    code = run.main(["--trials", "4", "--epochs", "2", *_stores(path)])  # no --limit-*
    assert code == 0
    study, *_ = load(path)
    assert len(study.trials) == 4
    assert study.trials[-1].user_attrs[DATA_ATTR] == {"train": 300, "val": 200}


@pytest.mark.parametrize("option", ["--limit-train", "--limit-val"])
def test_other_limits_for_a_resumed_study_are_refused_and_nothing_changes(
    classifier_study, tmp_path, capsys, option
):
    path = copy_stores(classifier_study, tmp_path / "s")
    before = _snapshot(path)
    code = run.main(["--trials", "5", "--epochs", "2", option, "1000", *_stores(path)])
    assert code == 2
    err = capsys.readouterr().err
    kind = "training" if option == "--limit-train" else "validation"
    seen = 300 if option == "--limit-train" else 200
    assert f"on {seen} {kind} images, not 1,000 ({option} 1000)" in err
    assert f"leave out {option}" in err and "--study-name" in err
    assert _snapshot(path) == before


def test_the_same_limits_given_again_resume_the_study(classifier_study, tmp_path):
    path = copy_stores(classifier_study, tmp_path / "s")
    argv = ["--trials", "4", "--epochs", "2", "--limit-train", "300", "--limit-val", "200"]
    assert run.main([*argv, *_stores(path)]) == 0
    assert len(load(path)[0].trials) == 4


def _study(user_attrs=None, trial_images=()):
    study = optuna.create_study()
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    for images in trial_images:
        study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={DATA_ATTR: images}))
    return study


FULL = SimpleNamespace(train=range(50_000), val=range(10_000))  # the splits' lengths


def test_a_new_study_gets_the_defaults_or_what_is_given():
    filled = with_limits(RunSettings(), None, FULL)
    assert (filled.limit_train, filled.limit_val) == (LIMIT_TRAIN, LIMIT_VAL)
    filled = with_limits(RunSettings(limit_train=0, limit_val=640), None, FULL)
    assert (filled.limit_train, filled.limit_val) == (0, 640)


def test_a_study_from_before_the_record_resumes_with_its_latest_trials_images():
    """Older studies kept the images on each trial only."""
    study = _study(trial_images=[{"train": 10_000, "val": 2_500}, {"train": 3_840, "val": 640}])
    filled = with_limits(RunSettings(), study, FULL)
    assert (filled.limit_train, filled.limit_val) == (3_840, 640)


def test_a_study_on_every_image_resumes_on_every_image():
    study = _study({DATA_ATTR: {"train": 50_000, "val": 10_000}})
    filled = with_limits(RunSettings(), study, FULL)
    assert (filled.limit_train, filled.limit_val) == (0, 0)
    # 0 (all) and a number above the split both mean every image: the same as the study's
    filled = with_limits(RunSettings(limit_train=0, limit_val=99_999), study, FULL)
    assert (filled.limit_train, filled.limit_val) == (0, 99_999)
    with pytest.raises(UsageError, match=r"on 50,000 training images, not 10,000"):
        with_limits(RunSettings(limit_train=10_000), study, FULL)


def test_a_study_that_never_recorded_its_images_takes_the_defaults():
    filled = with_limits(RunSettings(limit_val=100), _study(), FULL)
    assert (filled.limit_train, filled.limit_val) == (LIMIT_TRAIN, 100)
