"""Costs, trade-offs, budgets and warm starts: what each extra parameter buys, and starting
from what is known."""

import optuna
import pytest
import yaml

from objectives import TrialSpec
from study import export, run
from study.search.costs import param_count

from ..conftest import TINY, copy_stores, run_study, stores
from ..helpers import load
from ..test_bad_input import _assert_refused

NAME = "ae-fashion-mnist"


@pytest.fixture(scope="module")
def ae_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("ae")
    assert run_study(path, "--trials", "5", "--objective", "ae", "--pruner", "none") == 0
    return path


def test_every_trial_records_what_it_cost(ae_study):
    study, client, _, runs = load(ae_study, NAME)
    by_id = {r.info.run_id: r for r in runs}
    for t in study.trials:
        cost = t.user_attrs["cost"]
        spec = TrialSpec.from_dict(t.user_attrs["spec"])
        assert cost["params"] == param_count(spec.model) > 0
        assert cost["latent"] == spec.model.latent_dim
        assert cost["epoch_seconds"] > 0 and cost["peak_memory_mb"] > 0
        metrics = by_id[t.user_attrs["mlflow_run_id"]].data.metrics
        assert metrics["cost_params"] == cost["params"]
        assert metrics["cost_latent"] == cost["latent"]
        assert t.user_attrs["val"]["mse"] == pytest.approx(t.value)


def test_the_report_draws_the_pareto_front_and_lists_its_trials(ae_study):
    study, *_ = load(ae_study, NAME)
    md = (ae_study / "reports" / NAME / "report.md").read_text()
    assert "## Trade-offs" in md and "pareto-params.png" in md and "pareto-latent.png" in md
    assert (ae_study / "reports" / NAME / "pareto-params.png").stat().st_size > 1000
    section = md.split("### Trade-off: mse against parameters", 1)[1].split("###", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    front = {int(line.split("|")[1]) for line in rows}
    points = {t.number: (t.value, t.user_attrs["cost"]["params"]) for t in study.trials}
    for n, (v, p) in points.items():
        dominated = any(
            v2 <= v and p2 <= p and (v2, p2) != (v, p) for m, (v2, p2) in points.items() if m != n
        )
        assert (n in front) == (not dominated), (n, points)


def test_export_picks_the_best_trial_within_a_budget(ae_study, tmp_path, capsys):
    study, *_ = load(ae_study, NAME)
    smallest = min(study.trials, key=lambda t: t.user_attrs["cost"]["params"])
    budget = smallest.user_attrs["cost"]["params"]
    out = tmp_path / "small.yaml"
    argv = [*stores(ae_study), "--objective", "ae", "--out", str(out)]
    assert export.main([*argv, "--max-params", str(budget)]) == 0
    within = [t for t in study.trials if t.user_attrs["cost"]["params"] <= budget]
    assert yaml.safe_load(out.read_text())["trial"] == min(within, key=lambda t: t.value).number
    _assert_refused(
        export.main, [*argv, "--max-params", str(budget - 1)], ae_study, capsys,
        "no completed trial", f"the smallest has {budget:,} parameters",
    )  # fmt: skip


def test_a_parameter_budget_records_bigger_models_without_training_them(tmp_path):
    argv = ["--trials", "4", "--objective", "ae", "--max-params", "20000", "--no-report"]
    assert run_study(tmp_path, *argv) == 0
    study, client, _, runs = load(tmp_path, NAME)
    over = [t for t in study.trials if t.user_attrs.get("over_budget")]
    within = [t for t in study.trials if not t.user_attrs.get("over_budget")]
    assert over, "the space's models go well over 20,000 parameters"
    assert len([t for t in within if t.state.name in ("COMPLETE", "PRUNED")]) == 4
    by_id = {r.info.run_id: r for r in runs}
    for t in over:
        assert t.state.name == "PRUNED" and t.intermediate_values == {}
        assert t.user_attrs["cost"]["params"] > 20000
        assert t.system_attrs["constraints"][0] > 0  # what the sampler learns from
        r = by_id[t.user_attrs["mlflow_run_id"]]
        assert r.info.status == "KILLED" and "over budget" in r.data.tags["prune_reason"]
    for t in within:
        assert t.user_attrs["cost"]["params"] <= 20000 and t.system_attrs["constraints"][0] <= 0


def test_a_warm_start_copies_finished_trials_once_and_they_do_not_count(ae_study, tmp_path):
    copy_stores(ae_study, tmp_path / "s")
    path = tmp_path / "s"
    argv = ["--trials", "2", "--objective", "ae", "--study-name", "second", "--no-report"]
    assert run_study(path, *argv, "--warm-start", NAME) == 0
    first, *_ = load(path, NAME)
    second = optuna.load_study(study_name="second", storage=f"sqlite:///{path}/optuna.db")
    copies = [t for t in second.trials if "warm_start_from" in t.user_attrs]
    complete = [t for t in first.trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["warm_start_from"] for t in copies) == sorted(
        f"{NAME}#{t.number}" for t in complete
    )
    assert all("mlflow_run_id" not in t.user_attrs for t in copies)  # never trained here
    own = [t for t in second.trials if "warm_start_from" not in t.user_attrs]
    assert len(own) == 2  # --trials counts this study's own trials only
    assert run_study(path, *argv[:1], "3", *argv[2:], "--warm-start", NAME) == 0
    again = optuna.load_study(study_name="second", storage=f"sqlite:///{path}/optuna.db")
    assert sum("warm_start_from" in t.user_attrs for t in again.trials) == len(copies)


def test_an_enqueued_config_runs_first_with_its_own_parameters(ae_study, tmp_path):
    cfg = tmp_path / "best.yaml"
    assert export.main([*stores(ae_study), "--objective", "ae", "--out", str(cfg)]) == 0
    params = yaml.safe_load(cfg.read_text())["params"]
    argv = ["--trials", "1", "--objective", "ae", "--no-report"]
    assert run_study(tmp_path, *argv, "--enqueue-config", str(cfg)) == 0
    study, *_ = load(tmp_path, NAME)
    assert study.trials[0].params == params
    assert study.trials[0].user_attrs["enqueued_config"] == str(cfg)


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--max-params", "0"], ["--max-params", "'0'"]),
        (["--warm-start", "nope"], ["--warm-start 'nope'", "no such study"]),
        (["--warm-start", "classifier-fashion-mnist"], ["holds objective 'classifier'"]),
        (["--enqueue-config", "{missing}"], ["does not exist"]),
        (["--enqueue-config", "{broken}"], ["not valid YAML"]),
        (["--enqueue-config", "{classifier}"], ["a 'classifier' config", "'ae'"]),
        (["--enqueue-config", "{outside}"], ["do not fit the 'ae' search space"]),
    ],
)
def test_bad_search_options_are_one_line_and_change_nothing(
    ae_study, classifier_study, tmp_path, capsys, extra, needles
):
    path = tmp_path / "s"
    copy_stores(ae_study, path)
    # The classifier study in the same storage, for --warm-start of another objective.
    clf = optuna.load_study(
        study_name="classifier-fashion-mnist", storage=f"sqlite:///{classifier_study}/optuna.db"
    )
    optuna.copy_study(
        from_study_name=clf.study_name,
        from_storage=f"sqlite:///{classifier_study}/optuna.db",
        to_storage=f"sqlite:///{path}/optuna.db",
    )
    assert (
        export.main([*stores(path), "--objective", "ae", "--out", str(tmp_path / "ae.yaml")]) == 0
    )
    good = yaml.safe_load((tmp_path / "ae.yaml").read_text())
    files = {
        "missing": tmp_path / "missing.yaml",
        "broken": tmp_path / "broken.yaml",
        "classifier": tmp_path / "clf.yaml",
        "outside": tmp_path / "outside.yaml",
    }
    files["broken"].write_text("params: [unclosed\n")
    files["classifier"].write_text(yaml.safe_dump({**good, "objective": "classifier"}))
    outside = {**good, "params": {**good["params"], "ae.latent_dim": 4096}}
    files["outside"].write_text(yaml.safe_dump(outside))
    extra = [e.format(**files) for e in extra]
    argv = [*TINY, *stores(path), "--objective", "ae", "--trials", "9", *extra]
    _assert_refused(run.main, argv, path, capsys, *needles)
