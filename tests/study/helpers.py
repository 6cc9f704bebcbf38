"""Reading back what a study left in its Optuna and MLflow stores."""

import time

import optuna
from mlflow import MlflowClient


def load(path, name="classifier-fashion-mnist"):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}/optuna.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{path}/mlflow.db")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = [r for r in runs if r.data.tags.get("kind") == "study"]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return study, client, parent, trials


def wait_for(check, what, proc, timeout=600):
    """Until ``check()`` holds (a state in a store), while ``proc`` (the study) runs."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the study ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def artifacts(client, run_id, path=None):
    return sorted(a.path for a in client.list_artifacts(run_id, path))


class Harness:
    """One study's trials run one by one through the real ``TrialRunner`` (real stores)."""

    def __init__(self, path, small, *, pruner=None, objective="ae", **settings):
        import torch

        from study.data.loading import Dataset
        from study.settings import RunSettings
        from study.stores.locations import parse_storage, parse_tracking
        from study.tracking.runs import StudyTracker

        train, val = small
        self.settings = RunSettings(
            objective=objective,
            storage=parse_storage(f"sqlite:///{path}/optuna.db"),
            tracking=parse_tracking(f"sqlite:///{path}/mlflow.db"),
            **{"epochs": 2, "heartbeat": 1, **settings},
        )
        self.data = Dataset("fashion-mnist", train, val, val, "test", "0123456789ab")
        self.study = optuna.create_study(
            study_name=self.settings.name,
            storage=self.settings.storage.url,
            pruner=pruner,
            direction="maximize" if objective == "classifier" else "minimize",
        )
        self.tracker = StudyTracker(self.settings.tracking, self.study, settings={}, data=self.data)
        self.device = torch.device("cpu")
        self.said = []

    def run(self, objective):
        from study.execution.trial import TrialRunner

        runner = TrialRunner(
            objective,
            self.data,
            settings=self.settings,
            device=self.device,
            tracker=self.tracker,
            say=self.said.append,
        )
        return runner(self.study, self.study.ask())
