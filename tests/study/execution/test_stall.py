"""A worker that stalls (a suspended laptop, a VM migration, a swap storm) and wakes up after
another worker took its trial over must leave the trial be and go on, on SQLite."""

from ..stall import check_takeover, pause_one_until_taken_over, start


def test_a_paused_worker_wakes_up_leaves_its_taken_over_trial_and_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    name, trials = "stalled", 5
    procs = [start(tmp_path / w, storage, tracking, name, trials) for w in ("a", "b")]
    try:
        files = [tmp_path / "optuna.db", tmp_path / "mlflow.db"]
        number, _ = pause_one_until_taken_over(procs, storage, name, files)
        outs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    check_takeover(storage, tracking, name, trials, number, outs)
