"""The harness's edges: CLIs (run, export, train), data, Optuna and MLflow set-up."""
