"""study.confirm: the best configurations retrained with new seeds, ranked by mean."""

import statistics

import optuna
import yaml

from study import confirm, export, report

from ..conftest import stores
from ..helpers import load
from ..test_bad_input import _assert_refused

CONFIRM = ["--top", "2", "--seeds", "2"]  # the trials' own data limits (TINY's) by default


def test_confirm_ranks_by_mean_scores_the_test_split_and_export_takes_its_best(study_copy, capsys):
    source = optuna.load_study(
        study_name="classifier-fashion-mnist", storage=f"sqlite:///{study_copy}/optuna.db"
    )
    top = sorted((t for t in source.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)[
        :2
    ]
    assert confirm.main([*CONFIRM, "--test", *stores(study_copy)]) == 0
    out = capsys.readouterr().out
    retrained = optuna.load_study(
        study_name="classifier-fashion-mnist-confirm", storage=f"sqlite:///{study_copy}/optuna.db"
    )
    assert (
        {str(t.user_attrs["images"]) for t in retrained.trials}
        == {str(t.user_attrs["images"]) for t in top}
        == {str({"train": 300, "val": 200})}
    )  # the same images as the trials saw
    _, client, _, runs = load(study_copy)
    by_trial = {}
    for r in runs:
        if r.info.run_name.startswith("confirm-trial-"):
            assert "test_acc" in r.data.metrics  # --test scored every run
            number = int(r.info.run_name.split("-")[2])
            by_trial.setdefault(number, []).append(r.data.metrics["objective_value"])
    assert sorted(by_trial) == sorted(t.number for t in top)
    assert all(len(v) == 2 for v in by_trial.values())
    means = {n: statistics.fmean(v) for n, v in by_trial.items()}
    ranked = sorted(means, key=means.get, reverse=True)
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[2]) for r in rows] == ranked  # best mean first
    assert [r.split("|")[4].strip() for r in rows] == [f"{means[n]:.4f}" for n in ranked]
    # export --confirmed writes the best by mean, which need not be the best trial.
    out_file = study_copy / "confirmed.yaml"
    assert export.main([*stores(study_copy), "--confirmed", "--out", str(out_file)]) == 0
    assert yaml.safe_load(out_file.read_text())["trial"] == ranked[0]
    # The study report shows the confirmation.
    assert report.main(stores(study_copy)) == 0
    text = (study_copy / "reports" / "classifier-fashion-mnist" / "report.md").read_text()
    assert "## Controlled experiments" in text and "### Confirmation" in text
    assert "From the search (observational)" in text


def test_bad_confirmations_are_refused(study_copy, tmp_path, capsys):
    _assert_refused(
        confirm.main, [*CONFIRM, *stores(study_copy), "--seeds", "1"], study_copy, capsys,
        "--seeds 1", "at least 2",
    )  # fmt: skip
    _assert_refused(
        export.main, [*stores(study_copy), "--confirmed"], study_copy, capsys,
        "no confirmation yet", "study.confirm",
    )  # fmt: skip
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name="classifier-fashion-mnist", storage=storage)
    _assert_refused(
        confirm.main, [*CONFIRM, *stores(tmp_path)], tmp_path, capsys, "no completed trial"
    )
