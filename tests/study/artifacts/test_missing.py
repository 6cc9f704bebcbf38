"""A finished trial's artifacts deleted by hand: the report, export, encode and the registry
say which trial's file is missing, and the rest of the study still works (real stores)."""

import shutil
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from study import encode, export, report, run
from study.search.results import best_trial

from ..conftest import TINY, stores

NAME = "ae-fashion-mnist"


@pytest.fixture
def lost(tmp_path, monkeypatch):
    """A 3-trial study whose best trial's artifacts directory was deleted; (path, trial,
    run id, the config exported before the deletion)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    argv = [*TINY, "--objective", "ae", "--no-refit", *stores(tmp_path), "--trials", "3"]
    assert run.main(argv) == 0
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path}/optuna.db")
    best = best_trial(study)
    run_id = best.user_attrs["mlflow_run_id"]
    config = tmp_path / "before.yaml"
    assert export.main(["--objective", "ae", *stores(tmp_path), "--out", str(config)]) == 0
    uri = MlflowClient().get_run(run_id).info.artifact_uri
    shutil.rmtree(Path(uri.removeprefix("file://")))
    return tmp_path, best.number, run_id, config


def said(capsys) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_each_command_names_the_trial_whose_file_is_missing(lost, capsys):
    path, number, run_id, config = lost
    capsys.readouterr()
    who = f"trial {number} of study '{NAME}' (MLflow run {run_id})"
    # The report is written, with a section naming what is gone.
    assert report.main(["--objective", "ae", *stores(path)]) == 0
    assert f"warning: {who} has lost its checkpoint/model.pt" in said(capsys)
    md = (path / "reports" / NAME / "report.md").read_text()
    assert "## Missing files" in md and f"{who} has lost its checkpoint/model.pt" in md
    assert f"{who} has lost its pictures" in md
    # The export is written without the checkpoint it no longer has, and says so.
    out = path / "after.yaml"
    assert export.main(["--objective", "ae", *stores(path), "--out", str(out)]) == 0
    assert f"{who} has lost its checkpoint/model.pt" in said(capsys)
    assert "checkpoint_uri: null" in out.read_text()
    # encode from the run, from the config exported before, and from the registry.
    for source in (["--run", run_id], ["--config", str(config)],
                   ["--model", f"models:/{NAME}-encoder@best"]):  # fmt: skip
        assert encode.main([*source, "--out", str(path / "z.npz")]) == 2
        text = said(capsys)
        assert f"trial {number}" in text and "missing" in text and "deleted by hand" in text
        assert "python -m study.train --config" in text
    assert "(version 1)" in text  # the registry's answer names its version


def test_the_rest_of_the_study_still_works(lost, capsys):
    path, number, run_id, _ = lost
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")
    other = next(t for t in study.trials if t.state.name == "COMPLETE" and t.number != number)
    cfg = path / "other.yaml"
    args = ["--objective", "ae", *stores(path), "--trial", str(other.number), "--out", str(cfg)]
    assert export.main(args) == 0
    assert encode.main(["--config", str(cfg), "--out", str(path / "z.npz")]) == 0
    # The study resumes; its best trial's encoder cannot be published, and it says why.
    argv = [*TINY, "--objective", "ae", "--no-refit", *stores(path), "--trials", "4"]
    capsys.readouterr()
    assert run.main(argv) == 0
    text = said(capsys)
    after = optuna.load_study(study_name=NAME, storage=f"sqlite:///{path}/optuna.db")
    assert len([t for t in after.trials if t.state.name in ("COMPLETE", "PRUNED")]) == 4
    if best_trial(after).number == number:  # still the best: its encoder is gone
        assert "has lost its checkpoint/model.pt" in text and "not published" in text
    else:  # a new best, whose files are all there
        assert f"Encoder of trial {best_trial(after).number}:" in text
