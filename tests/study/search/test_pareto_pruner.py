"""The pareto-halving pruner of two-objective studies: the rung rule on hand-made fronts, a
real tiny ``--pareto`` study with it (some trials pruned, the front from completed trials,
resume), and bad input."""

import math

import optuna
import pytest
from mlflow import MlflowClient

from study import run
from study.search.pareto import RUNG_ATTR, VALUES_ATTR, crowding, fronts, keeps, rung_epochs

from ..conftest import stores


def test_rungs_are_one_three_nine_below_the_budget():
    assert rung_epochs(1) == [] and rung_epochs(4) == [1, 3] and rung_epochs(10) == [1, 3, 9]


def test_fronts_sort_by_domination():
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (6, 6), (4, 4)]
    assert fronts(points) == [[0, 1, 2], [3], [5], [4]]


def test_a_dominated_trial_is_pruned_and_a_front_member_kept():
    # Nine trials at a rung (minimised): three on the first front, the rest behind them.
    points = [(1, 9), (5, 5), (9, 1), (6, 6), (7, 7), (8, 8), (9, 9), (9.5, 9.5), (6, 9)]
    numbers = list(range(9))
    assert keeps(points, numbers, 1)  # a front member, in the middle of the front
    for dominated in range(3, 9):  # the top third is 3: all of them on the first front
        assert not keeps(points, numbers, dominated), dominated


def test_front_members_beyond_the_top_third_are_all_kept():
    points = [(i, 9 - i) for i in range(9)] + [(9, 9)]  # nine non-dominated, one behind
    assert all(keeps(points, list(range(10)), i) for i in range(9))
    assert not keeps(points, list(range(10)), 9)


def test_ties_behind_the_front_follow_crowding_distance_then_the_metric():
    # The first front takes one slot of the top 6 // 3 = 2; the second slot goes to the
    # second front's member with the largest crowding distance: its two ends (infinite) tie,
    # and the one with the better metric wins.
    points = [(0, 0), (1, 5), (2, 3), (2.5, 2.9), (5, 1), (9, 9)]
    numbers = [0, 1, 2, 3, 4, 5]
    second = fronts(points)[1]
    assert second == [1, 2, 3, 4]
    d = crowding(points, second)
    assert d[1] == d[4] == math.inf and d[3] > d[2] > 0
    assert keeps(points, numbers, 0) and keeps(points, numbers, 1)
    assert not any(keeps(points, numbers, i) for i in (2, 3, 4, 5))
    # Alone, or with one rival it does not beat: the first trial at a rung goes on.
    assert keeps([(3, 3)], [0], 0)
    assert not keeps([(1, 1), (3, 3)], [0, 1], 1)


TINY = ["--epochs", "4", "--limit-train", "300", "--limit-val", "200", "--no-refit"]
PARETO = ["--objective", "classifier", "--pareto", "params", "--no-baseline"]


def test_a_real_pareto_study_prunes_records_both_values_and_resumes(tmp_path, capsys):
    argv = [*TINY, *PARETO, *stores(tmp_path), "--trials", "12", "--seed", "3"]
    assert run.main(argv) == 0
    assert "pruned by pareto-halving" in capsys.readouterr().out
    study = optuna.load_study(study_name="classifier-fashion-mnist",
                              storage=f"sqlite:///{tmp_path}/optuna.db")  # fmt: skip
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert pruned and complete
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    for t in pruned:
        metric, params = t.user_attrs[VALUES_ATTR]
        assert 0 <= metric <= 1 and params == t.user_attrs["cost"]["params"]
        assert str(t.user_attrs["cost"]["epochs"]) in "123"  # stopped at a rung (1 or 3)
        r = client.get_run(t.user_attrs["mlflow_run_id"])
        assert r.info.status == "KILLED" and r.data.tags["optuna.state"] == "PRUNED"
        assert "pareto-halving" in r.data.tags["prune_reason"]
        assert r.data.metrics["objective_value"] == pytest.approx(metric)
        assert r.data.metrics["cost_params"] == params
    for t in study.trials:  # every trained trial left its pair at the rungs it reached
        if t.state.name in ("COMPLETE", "PRUNED") and t.user_attrs["cost"]["epochs"] >= 1:
            assert "1" in t.user_attrs[RUNG_ATTR]
    # The front is drawn from completed trials only.
    assert {t.number for t in study.best_trials} <= {t.number for t in complete}
    # Resume: three more trials, pruned the same way.
    assert run.main([*argv, "--trials", "15"]) == 0
    study = optuna.load_study(study_name="classifier-fashion-mnist",
                              storage=f"sqlite:///{tmp_path}/optuna.db")  # fmt: skip
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 15


def test_pruner_none_trains_every_trial_to_its_budget(tmp_path):
    argv = [*TINY, *PARETO, *stores(tmp_path), "--trials", "6", "--pruner", "none"]
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="classifier-fashion-mnist",
                              storage=f"sqlite:///{tmp_path}/optuna.db")  # fmt: skip
    assert not [t for t in study.trials if t.state.name == "PRUNED"]
    assert all(RUNG_ATTR not in t.user_attrs for t in study.trials)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--pareto", "params", "--pruner", "median"], "--pruner median prunes single-objective"),
        (["--pareto", "kl", "--pruner", "hyperband"], "use --pruner pareto-halving"),
        (["--pruner", "pareto-halving"], "prunes two-objective studies; add --pareto"),
    ],
)
def test_a_pruner_of_the_other_kind_is_one_line_and_exit_2(tmp_path, capsys, args, said):
    assert run.main([*TINY, *stores(tmp_path), *args, "--trials", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert not (tmp_path / "optuna.db").exists()
