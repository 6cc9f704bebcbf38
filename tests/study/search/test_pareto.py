"""Two-objective studies (``--pareto``): the metric and a cost, both kept (unpruned here:
``--pruner none``; the pareto-halving pruner is tested in test_pareto_pruner.py)."""

import pytest
import yaml

from study import export, run

from ..conftest import TINY, copy_stores, run_study, stores
from ..helpers import load
from ..test_bad_input import _assert_refused

NAME = "ae-fashion-mnist"


@pytest.fixture(scope="module")
def pareto_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("pareto")
    assert (
        run_study(
            path, "--trials", "4", "--objective", "ae", "--pareto", "params", "--pruner", "none"
        )
        == 0
    )
    return path


def test_a_pareto_study_minimises_the_metric_and_the_parameter_count(pareto_study):
    study, client, _, runs = load(pareto_study, NAME)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["mse", "parameters"]
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4  # nothing pruned
    for t in study.trials:
        assert t.values[1] == t.user_attrs["cost"]["params"]
        assert t.values[0] == pytest.approx(t.user_attrs["val"]["mse"])
        assert t.intermediate_values == {}  # Optuna takes no reports from such a study
    assert {r.data.tags["optuna.state"] for r in runs} == {"COMPLETE"}
    md = (pareto_study / "reports" / NAME / "report.md").read_text()
    front = sorted(t.number for t in study.best_trials)
    assert f"its Pareto front holds trials {front}" in md
    for png in ("pareto-study.png", "hypervolume.png"):
        assert (pareto_study / "reports" / NAME / png).stat().st_size > 1000


def test_a_pareto_study_resumes_as_one(pareto_study, tmp_path):
    path = tmp_path / "s"
    copy_stores(pareto_study, path)
    assert (
        run_study(
            path, "--trials", "5", "--objective", "ae", "--pareto", "params", "--pruner", "none"
        )
        == 0
    )
    study, *_ = load(path, NAME)
    assert len(study.trials) == 5 and len(study.directions) == 2


def test_export_takes_a_front_trial_or_a_budget(pareto_study, tmp_path, capsys):
    study, *_ = load(pareto_study, NAME)
    argv = [*stores(pareto_study), "--objective", "ae", "--out", str(tmp_path / "x.yaml")]
    _assert_refused(export.main, argv, pareto_study, capsys, "multi-objective", "--trial N")
    n = study.best_trials[0].number
    assert export.main([*argv, "--trial", str(n)]) == 0
    assert yaml.safe_load((tmp_path / "x.yaml").read_text())["trial"] == n
    budget = max(t.user_attrs["cost"]["params"] for t in study.trials)
    assert export.main([*argv, "--max-params", str(budget)]) == 0
    best = min(study.trials, key=lambda t: t.values[0]).number
    assert yaml.safe_load((tmp_path / "x.yaml").read_text())["trial"] == best


def test_a_vae_can_trade_its_nelbo_against_its_kl(tmp_path):
    assert (
        run_study(
            tmp_path, "--trials", "2", "--objective", "vae", "--pareto", "kl", "--pruner", "none"
        )
        == 0
    )
    study, *_ = load(tmp_path, "vae-fashion-mnist")
    for t in study.trials:
        assert t.values[1] == pytest.approx(t.user_attrs["val"]["kl"])


@pytest.mark.parametrize(
    "which, extra, needles",
    [
        ("single", ["--pareto", "bogus"], ["--pareto", "'bogus'"]),
        ("single", ["--pareto", "kl"], ["--pareto kl needs the vae objective"]),
        ("single", ["--pareto", "params"], ["a single-objective study", "--pareto params"]),
        ("pareto", [], ["a two-objective study (--pareto params)", "no --pareto"]),
        ("pareto", ["--pareto", "latent"], ["(--pareto params)", "--pareto latent"]),
    ],
)
def test_a_study_keeps_its_number_of_objectives(
    pareto_study, tmp_path, capsys, which, extra, needles
):
    path = tmp_path / "s"
    if which == "pareto":
        copy_stores(pareto_study, path)
    else:
        path.mkdir()
        assert run_study(path, "--trials", "1", "--objective", "ae", "--no-report") == 0
    argv = [*TINY, *stores(path), "--objective", "ae", "--trials", "9", *extra]
    _assert_refused(run.main, argv, path, capsys, *needles)
