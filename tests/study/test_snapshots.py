"""What a running trial writes while it trains, and how often: its epochs' MLflow metrics
with the resume snapshot, every ``--snapshot-every`` seconds; its own state re-read at most
every ``GUARD_EVERY`` seconds. Real stores."""

import optuna
import pytest

from objectives import OBJECTIVES
from study import trial as trial_mod
from study.scheduler import Heartbeat
from study.tracking import RESUME_DIR, TrialRun

from .helpers import Harness, artifacts, load


@pytest.mark.parametrize("every", [0, 3600], ids=["every epoch", "longer than the trial"])
def test_a_running_trials_epochs_and_snapshot_are_written_every_snapshot_every_seconds(
    tmp_path, small, monkeypatch, every
):
    h = Harness(tmp_path, small, pruner=optuna.pruners.NopPruner(), epochs=4)
    h.tracker.snapshot_every = every
    client = h.tracker.client
    seen = []  # after each epoch: (val_mse steps in the store, a resume snapshot stored?)
    epoch = TrialRun.epoch

    def watched(self, result):
        epoch(self, result)
        steps = [m.step for m in client.get_metric_history(self.run_id, "val_mse")]
        seen.append((sorted(steps), artifacts(client, self.run_id, RESUME_DIR) != []))

    monkeypatch.setattr(TrialRun, "epoch", watched)
    assert h.run(OBJECTIVES["ae"]).state == "COMPLETE"
    n = len(seen)
    assert n >= 2  # the budget is sampled between 2 and 4 epochs
    if every == 0:
        assert seen == [(list(range(1, i + 1)), True) for i in range(1, n + 1)]
    else:  # nothing while it trained; the whole curve once the run is closed
        assert seen == [([], False)] * n
    _, _, _, (run,) = load(tmp_path, "ae-fashion-mnist")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_mse")]
    assert sorted(steps) == list(range(1, n + 1))
    assert run.info.status == "FINISHED"


def test_a_trial_taken_over_keeps_its_unwritten_epochs_in_its_failed_run(tmp_path, small):
    h = Harness(tmp_path, small)
    h.tracker.snapshot_every = 3600
    trial = h.study.ask()
    run = h.tracker.start_trial(trial, objective="ae")
    from models import EpochResult

    for e in (1, 2):
        run.epoch(EpochResult("train", e, {"loss": 0.5}, {"loss": 0.4, "mse": 0.3}, 1.0, "mse"))
    assert h.tracker.client.get_metric_history(run.run_id, "val_mse") == []
    run.taken_over("taken over: no heartbeat for 12 s")
    stored = h.tracker.client.get_run(run.run_id)
    assert stored.info.status == "FAILED"
    steps = [m.step for m in h.tracker.client.get_metric_history(run.run_id, "val_mse")]
    assert sorted(steps) == [1, 2]


def test_the_guard_reads_the_trial_at_most_every_guard_every_seconds(tmp_path, small, monkeypatch):
    h = Harness(tmp_path, small)
    trial = h.study.ask()
    reads = []
    current = trial_mod.internals.current

    def counted(study, t):
        reads.append(t.number)
        return current(study, t)

    monkeypatch.setattr(trial_mod.internals, "current", counted)
    life = trial_mod._Life(None, h.study, trial, Heartbeat(h.study, trial, print))
    life.guard()
    h.study.tell(trial, state=optuna.trial.TrialState.FAIL)  # as another worker would
    life.guard()  # within GUARD_EVERY of the last read: not read again
    assert reads == [trial.number]
    life.guarded -= trial_mod.GUARD_EVERY  # a second later (or a worker paused for longer)
    with pytest.raises(trial_mod.TakenOver):
        life.guard()
    assert reads == [trial.number] * 2
