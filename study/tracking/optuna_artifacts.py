"""What each trial leaves for optuna-dashboard: its pictures as Optuna artifacts and a note
linking its MLflow run.

The artifacts live in ``mlruns/optuna-artifacts`` beside a local store, or, when tracking is
remote (an MLflow server), in the MLflow artifact store under the study's parent run
(``optuna-artifacts/``), so workers on other machines and the dashboard share them.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from study.stores.locations import StorageURL, TrackingURL

ARTIFACT_DIR = "optuna-artifacts"


class MlflowArtifactStore:
    """An Optuna artifact store kept in the MLflow artifact store, under one run."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def open_reader(self, artifact_id: str):
        with tempfile.TemporaryDirectory(prefix="optuna-artifact-") as tmp:
            path = self.client.download_artifacts(self.run_id, f"{ARTIFACT_DIR}/{artifact_id}", tmp)
            return io.BytesIO(Path(path).read_bytes())

    def write(self, artifact_id: str, content_body) -> None:
        with tempfile.TemporaryDirectory(prefix="optuna-artifact-") as tmp:
            path = Path(tmp) / artifact_id
            path.write_bytes(content_body.read())
            self.client.log_artifact(self.run_id, str(path), ARTIFACT_DIR)

    def remove(self, artifact_id: str) -> None:
        raise NotImplementedError("artifacts in an MLflow run are kept; delete the run instead")


def artifact_store(storage: StorageURL, tracking: TrackingURL, client=None, parent_run_id=None):
    """Where a study's Optuna artifacts go (see the module's docstring)."""
    if tracking.kind == "http" and client is not None and parent_run_id:
        return MlflowArtifactStore(client, parent_run_id)
    from optuna.artifacts import FileSystemArtifactStore

    root = storage.reports_root.parent / ARTIFACT_DIR
    root.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(root))


def run_url(tracking: TrackingURL, experiment_id: str, run_id: str) -> str:
    """Where a run shows in the MLflow UI (``mlflow ui``'s default address for a local store)."""
    base = tracking.redacted if tracking.kind == "http" else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


class DashboardRecords:
    """What a trial leaves for optuna-dashboard: its pictures and a note with its MLflow run."""

    def __init__(self, store, tracking: TrackingURL, experiment_id: str):
        self.store, self.tracking, self.experiment_id = store, tracking, experiment_id

    def note(self, trial, run_id: str) -> None:
        """The trial's note: a link to its MLflow run (written with or without the optional
        ``[ui]`` extra installed, so a dashboard installed later shows it)."""
        from study.stores.optuna_internals import save_dashboard_note

        url = run_url(self.tracking, self.experiment_id, run_id)
        save_dashboard_note(
            trial, f"MLflow run [trial-{trial.number}]({url}): parameters, curves, checkpoint."
        )

    def picture(self, trial, path: Path) -> None:
        from optuna.artifacts import upload_artifact

        upload_artifact(
            artifact_store=self.store, file_path=str(path), study_or_trial=trial,
            mimetype="image/png",
        )  # fmt: skip
