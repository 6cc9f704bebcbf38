"""Study plots and report: seed questions answered with counts, seeds beside the best."""

import re

import pytest

from objectives.seeds import SEED_ATTR, seed_spec
from study import report
from study.reporting import plots as report_plots
from study.reporting import tables as report_tables

from ..conftest import run_study
from ..helpers import artifacts, load


def table(markdown: str, title: str) -> list[list[str]]:
    """The rows of the table under ``### title``."""
    section = markdown.split(f"### {title}\n", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]


def check_counts(rows, study):
    complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    assert sum(int(r[1]) for r in rows) == complete
    assert sum(int(r[2]) for r in rows) == pruned


def test_seeds_run_first_to_the_end_and_the_report_sets_them_beside_the_best(tmp_path):
    seeds = ["s1a-linear-ae", "s2-mlp-ae-3d", "s4-conv-ae-fc"]
    argv = ["--trials", "7", "--objective", "ae", "--enqueue-seeds", ",".join(seeds)]
    assert run_study(tmp_path, *argv) == 0
    study, client, parents, _ = load(tmp_path, "ae-fashion-mnist")
    first = study.trials[:3]
    assert [t.user_attrs[SEED_ATTR] for t in first] == seeds
    for t, name in zip(first, seeds, strict=True):
        assert t.user_attrs["spec"] == seed_spec("ae", name, max_epochs=2).to_dict()
        assert t.state.name == "COMPLETE" and len(t.intermediate_values) == 2  # never pruned
    assert all(SEED_ATTR not in t.user_attrs for t in study.trials[3:])

    out = tmp_path / "reports" / "ae-fashion-mnist"
    md = (out / "report.md").read_text()
    for name in ("history.png", "intermediate.png", "report.html"):
        assert (out / name).stat().st_size > 1000
    seed_rows = table(
        md.replace("## Seed systems", "### Seed systems"),
        "Seed systems beside the best configuration found",
    )
    assert [r[0] for r in seed_rows[:3]] == seeds
    # S1 was written for MNIST: the report says so, and that it trained on Fashion-MNIST here.
    assert [r[7] for r in seed_rows[:3]] == ["mnist", "fashion-mnist", "fashion-mnist"]
    assert "Seeds whose write-up used mnist train here on fashion-mnist" in md
    assert seed_rows[-1][0].startswith("**best found**")
    assert seed_rows[-1][1] == str(study.best_trial.number)
    assert seed_rows[-1][3] == f"{study.best_value:.4f}"
    fc = table(md, "FC bottleneck in conv autoencoders")
    assert "with FC bottleneck" in [r[0] for r in fc]
    check_counts(table(md, "Latent size"), study)
    check_counts(table(md, "MLP vs conv"), study)
    assert "Best trial" in md and "best-reconstructions.png" in md

    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # offline: nothing fetched
    assert "<script" not in html
    parent = parents[0].info.run_id
    assert {"report/report.html", "report/report.md", "report/history.png"} <= set(
        artifacts(client, parent, "report")
    )

    # Resuming with the same flag does not enqueue the seeds again.
    assert run_study(tmp_path, *argv[:1], "8", *argv[2:]) == 0
    study, *_ = load(tmp_path, "ae-fashion-mnist")
    assert len(study.trials) == 8
    assert sum(SEED_ATTR in t.user_attrs for t in study.trials) == 3


def test_classifier_report_answers_the_freeze_question(classifier_study):
    study, *_ = load(classifier_study)
    md = (classifier_study / "reports" / study.study_name / "report.md").read_text()
    rows = table(md, "Freeze choice")
    assert {r[0] for r in rows} <= {"frozen", "finetune", "joint", "scratch"}
    check_counts(rows, study)
    freezes = {t.user_attrs["spec"]["model"]["freeze"] for t in study.trials}
    assert {r[0] for r in rows} == freezes


def test_vae_report_shows_samples_from_the_prior(tmp_path):
    assert run_study(tmp_path, "--trials", "2", "--objective", "vae") == 0
    out = tmp_path / "reports" / "vae-fashion-mnist"
    assert (out / "best-samples.png").stat().st_size > 1000
    assert "best-samples.png" in (out / "report.md").read_text()


def test_classifier_on_a_pretrained_vae_shows_samples_from_the_prior(tmp_path):
    argv = ["--trials", "1", "--enqueue-seeds", "s3-mlp-vae"]  # S3's VAE under S0's head
    assert run_study(tmp_path, *argv) == 0
    out = tmp_path / "reports" / "classifier-fashion-mnist"
    assert (out / "best-samples.png").stat().st_size > 1000


def test_report_cli_on_demand(study_copy, tmp_path, capsys):
    out = tmp_path / "again"
    argv = ["--storage", f"sqlite:///{study_copy}/optuna.db"]
    argv += ["--tracking-uri", f"sqlite:///{study_copy}/mlflow.db", "--out", str(out)]
    assert report.main(argv) == 0
    assert (out / "report.html").is_file()
    assert str(out / "report.html") in capsys.readouterr().out
    assert report.main([*argv, "--study-name", "nope"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("n, label", [(2, "2"), (3, "3"), (4, "4-7"), (12, "8-15"), (64, "64-127")])
def test_latent_sizes_are_grouped_by_powers_of_two(n, label):
    assert report_tables.latent_bucket(n)[1] == label


def test_importances_with_conditional_parameters(tmp_path):
    """Parameters present in only some trials (e.g. ``train.adamw.weight_decay``)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.suggest_categorical("opt", ["a", "b"]) == "a":
            return x + trial.suggest_float("wd", 0, 1)
        return x

    study.optimize(objective, n_trials=12)
    plots, notes, top = report_plots.draw_plots(study, tmp_path)
    assert notes == []
    assert {p.name for _, _, p in plots} >= {"importances.png", "parallel.png", "slice.png"}
    assert len(top) == 2 and set(top) <= {"x", "opt", "wd"}


def test_every_trial_says_where_its_time_went_and_the_report_sums_it(classifier_study):
    from study.tracking.timing import ACTIVITIES, LABELS

    study, client, _, runs = load(classifier_study)
    by_id = {r.info.run_id: r for r in runs}
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert finished
    for t in finished:
        spent = t.user_attrs["time"]
        assert set(spent) == set(ACTIVITIES)
        assert spent["train"] > 0 and spent["eval"] > 0 and spent["tracking"] > 0
        assert 0 < spent["pictures"] <= spent["records"]
        metrics = by_id[t.user_attrs["mlflow_run_id"]].data.metrics
        for k in ACTIVITIES:
            assert metrics[f"time_{k}_s"] == pytest.approx(spent[k], abs=1e-3)
    md = (classifier_study / "reports" / study.study_name / "report.md").read_text()
    section = md.split("## Where the time went\n", 1)[1].split("\n## ", 1)[0]
    rows = {r[0]: r[1] for r in table("### t\n" + section, "t")}
    for key, label in LABELS.items():
        total = sum(t.user_attrs.get("time", {}).get(key, 0) for t in study.trials)
        assert float(rows[label]) == pytest.approx(total, abs=0.06)


def test_drawing_parameters_counts_as_sampling_and_reporting_as_storage():
    """TPE draws each parameter inside ``suggest_*``: that is sampling (``ask``), not
    bookkeeping; reports and pruning reads are Optuna storage calls."""
    import optuna

    from study.tracking.timing import Breakdown, TimedTrial

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    for v in (0.1, 0.9):
        study.enqueue_trial({"x": v})
        t = study.ask()
        study.tell(t, t.suggest_float("x", 0, 1))
    breakdown = Breakdown()
    trial = TimedTrial(study.ask(), breakdown)
    trial.suggest_float("x", 0, 1)
    assert breakdown.seconds["ask"] > 0 and breakdown.seconds["storage"] == 0
    trial.report(0.5, 1)
    trial.should_prune()
    assert breakdown.seconds["storage"] > 0
