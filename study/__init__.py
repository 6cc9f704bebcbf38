"""The harness's edges: the CLIs (run, export, train, encode, report), data, the Optuna and
MLflow stores, scheduling and tracking. The only package that touches files, URLs and the
environment."""
