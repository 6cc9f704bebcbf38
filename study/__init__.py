"""The harness's edges: CLIs (run, export, train), data, Optuna and MLflow set-up."""

import os as _os

# MLflow draws a progress bar for every artifact download; ours are single small files.
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# ... and prints "View run ... at URL" for every run it ends on a tracking server.
_os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
