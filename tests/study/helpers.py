"""Reading back what a study left in its Optuna and MLflow stores."""

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


def artifacts(client, run_id, path=None):
    return sorted(a.path for a in client.list_artifacts(run_id, path))
