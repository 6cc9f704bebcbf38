"""MLflow models as MLflow users expect them: every completed trial's model is a logged model
of its run (the ``mlflow.pytorch`` flavour, with a signature and an input example), and at the
end of ``study.run`` the best trial's encoder (and, for the classifier objective, the whole
classifier) is registered in the Model Registry as ``<study>-encoder`` (``<study>-classifier``)
with the alias ``best-trial``, and its refit (``study.execution.refit``) with the alias
``best`` (the best trial's own under ``best`` too with ``--no-refit``); both move when a
resumed study finds a better trial.

Per-trial models are pickled with the ``models`` package bundled (``code_paths``): they load
with ``mlflow.pytorch.load_model`` wherever torch and MLflow are installed. Registered models
are ``torch.export`` programs: they load without this project's code at all.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

import torch

from models import ServingModule, default_view
from study.tracking.records import artifact_repo

ALIAS = "best"  # the study's best model: its refit, or (with --no-refit) its best trial's
TRIAL_ALIAS = "best-trial"  # the best trial's own checkpoint, trained on the trials' images
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def registered_names(study_name: str, objective: str) -> dict[str, str]:
    """Registered model name per view: the encoder always, the classifier for ``classifier``."""
    names = {"encode": f"{study_name}-encoder"}
    if objective == "classifier":
        names["classify"] = f"{study_name}-classifier"
    return names


def pip_requirements() -> list[str]:
    import mlflow

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]


@contextlib.contextmanager
def no_requirements_check():
    """``mlflow.<flavour>.save_model`` without its check of the model's pip requirements
    against the installed packages.

    Why: the first check in a process maps every installed package's files to its modules
    (``importlib_metadata.packages_distributions``: ~1.7 s and ~30,000 stat calls here, in
    every worker, on its first completed trial), only to warn of a mismatch; the requirements
    this module writes are the installed versions of torch and MLflow, which cannot mismatch.
    """
    from mlflow.utils import environment

    check = environment.warn_dependency_requirement_mismatches
    environment.warn_dependency_requirement_mismatches = lambda requirements: None
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check


def log_model(client, experiment_id: str, run_id: str, model, example, *, view: str,
              portable: bool, metadata: dict) -> str:  # fmt: skip
    """Log ``model`` seen through ``view`` as a logged model of run ``run_id``; its id.

    ``portable``: a ``torch.export`` program (loads without this project); otherwise a
    pickled module with the ``models`` package bundled.
    """
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import infer_signature

    # A copy: .float() and .cpu() work in place, and the caller's model (a GPU trial's, whose
    # pictures are drawn next) must stay where it is.
    module = ServingModule(copy.deepcopy(model), view).eval().float().cpu()
    example = example.float().cpu()
    with torch.inference_mode():
        output = module(example)
    signature = infer_signature(example.numpy(), output.numpy())
    logged = client.create_logged_model(
        experiment_id, name=view if portable else "model", source_run_id=run_id,
        tags={"view": view}, model_type="pytorch",
    )  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="model-") as tmp:
            path = Path(tmp) / "model"
            with no_requirements_check():
                mlflow.pytorch.save_model(
                    module,
                    str(path),
                    signature=signature,
                    input_example=example.numpy(),
                    pip_requirements=pip_requirements(),
                    serialization_format="pt2" if portable else "pickle",
                    code_paths=None if portable else [str(MODELS_DIR)],
                    metadata=metadata,
                )
            artifact_repo(client, logged.artifact_location).log_artifacts(str(path))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id


def log_trial_model(client, experiment_id: str, run_id: str, model, spec, example) -> str:
    """A completed trial's whole model as a logged model of its run (its natural view)."""
    return log_model(
        client, experiment_id, run_id, model, example, view=default_view(model),
        portable=False, metadata={"spec": spec.to_dict()},
    )  # fmt: skip


def register_best(client, experiment_id: str, study_name: str, best, *, tracking_uri: str,
                  alias: str = ALIAS):  # fmt: skip
    """Register the best trial's encoder (and classifier) under ``alias``, unless the alias
    already points at that trial's run; {registered name: version}."""
    return register_run(
        client, experiment_id, study_name, best.user_attrs.get("mlflow_run_id"),
        objective=best.user_attrs.get("spec", {}).get("objective", ""),
        tags={"optuna.trial_number": best.number, "value": best.values[0], "source": "trial"},
        tracking_uri=tracking_uri, alias=alias,
    )  # fmt: skip


def register_run(client, experiment_id: str, study_name: str, run_id: str, *, objective: str,
                 tags: dict, tracking_uri: str, alias: str):  # fmt: skip
    """Register the model of the run ``run_id`` (its ``checkpoint/model.pt``: a trial's or
    a refit's) as the study's encoder (and classifier) under ``alias``, unless the alias
    already points at that run; ``tags`` go on each version. {registered name: version}."""
    from study.artifacts.encoder import Encoder

    out = {}
    for view, name in registered_names(study_name, objective).items():
        current = current_version(client, name, alias)
        if current is not None and current.run_id == run_id:
            out[name] = current.version
            continue
        encoder = Encoder.from_run(run_id, tracking_uri=tracking_uri)
        example = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        metadata = {"spec": encoder.spec.to_dict(), **tags}
        model_id = log_model(
            client, experiment_id, run_id, encoder.model, example, view=view, portable=True,
            metadata=metadata,
        )  # fmt: skip
        if current is None and not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name, tags={"optuna.study": study_name, "view": view})
        source = client.get_logged_model(model_id).artifact_location
        version = client.create_model_version(
            name, source=source, run_id=run_id, model_id=model_id, tags=tags
        )
        client.set_registered_model_alias(name, alias, version.version)
        out[name] = version.version
    return out


def current_version(client, name: str, alias: str = ALIAS):
    """The version ``alias`` points at, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001 - no such model or alias yet
        return None
