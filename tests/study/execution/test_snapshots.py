"""What a running trial writes while it trains, and how often: its epochs' MLflow metrics
with the resume snapshot, every ``--snapshot-every`` seconds; its own state re-read at most
every ``GUARD_EVERY`` seconds once its heartbeats are late. Real stores."""

import optuna
import pytest

from objectives import OBJECTIVES
from study.execution import trial as trial_mod
from study.execution.scheduler import Heartbeat
from study.stores.locations import open_storage
from study.tracking.runs import RESUME_DIR, TrialRun

from ..helpers import Harness, artifacts, load


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


def with_heartbeats(h):
    """The harness's study on its storage with heartbeats every second (a 3-second grace)."""
    storage = open_storage(h.settings.storage, heartbeat=1, grace=3)
    return optuna.load_study(study_name=h.study.study_name, storage=storage)


def test_the_guard_reads_the_trial_only_once_its_heartbeats_are_late(tmp_path, small, monkeypatch):
    h = Harness(tmp_path, small)
    study = with_heartbeats(h)
    trial = study.ask()
    reads = []
    current = trial_mod.internals.current

    def counted(study, t):
        reads.append(t.number)
        return current(study, t)

    monkeypatch.setattr(trial_mod.internals, "current", counted)
    beat = Heartbeat(study, trial, print, 3)
    beat.beat()
    life = trial_mod._Life(None, study, trial, beat)
    life.guard()  # heartbeats on time: no other worker can have taken it over
    assert reads == []
    beat.last_ok -= 1.5  # silent for half the grace period (a paused worker, say)
    life.guard()  # read: still RUNNING
    assert reads == [trial.number]
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # as another worker would
    life.guard()  # within GUARD_EVERY of the last read: not read again
    assert reads == [trial.number]
    life.guarded -= trial_mod.GUARD_EVERY  # a second later
    with pytest.raises(trial_mod.TakenOver):
        life.guard()
    assert reads == [trial.number] * 2


def test_a_heartbeat_silent_by_the_wall_clock_is_late(tmp_path, small):
    """The monotonic clock stops while a machine sleeps; other workers judge a heartbeat's
    age by the wall clock, so a worker woken from sleep reads its trial again."""
    study = with_heartbeats(Harness(tmp_path, small))
    said = []
    beat = Heartbeat(study, study.ask(), said.append, 3)
    beat.beat()
    assert beat.on_time()
    beat.last_ok_wall -= 60  # slept for a minute: monotonic time did not move
    assert not beat.on_time()
    assert beat.silence() >= 60
    beat.beat()  # the next beat says how long it was silent, and the trial stays suspect
    assert not beat.on_time()
    assert len(said) == 1 and said[0].startswith("warning: trial 0: no heartbeat for 60 s")
