"""The harness's edges: every file, URL and environment variable is touched here, never in
``objectives/`` or ``models/``.

The rooms, top to bottom; each imports only rooms below it (``tests/test_layout.py``
checks it, and that there is no import circle)::

    entry points   run, export, train, encode, report, ablate, confirm, dashboard, backup,
                   data (python -m study.data); cli (parsers, shared options),
                   experiment_cli (what ablate and confirm share)
        |
    execution      a study's run: session, scheduler (ask/tell, heartbeats, recovery),
                   one trial's life, the loop from checks to exit code, the refit,
                   workers, console
        |
    reporting      the report, its plots and tables, the experiments' tables, the
                   references (PCA, IWAE, published figures), HTML
        |
    experiments    studies of fixed cells: ablation and confirmation plans, factors, stats
        |
    search         sampler, pruner, warm starts, costs and budgets, results (which is best)
    tracking       MLflow runs and records, the background writer, registry, pictures,
        |          optuna-dashboard artifacts, time breakdowns
    artifacts      checkpoints, exported config files, the encoder loaded from either
        |
    data           finding, checking and loading the IDX files; the fixed split
        |
    settings       the frozen settings objects every CLI builds once
        |
    stores         storage and tracking URLs, locks, credentials, outage riding, the
        |          disk (full, read-only, damaged files), backups, the Optuna internals
        |          adapter, loading an existing study
    errors         the errors a user can cause, and the exit codes

Below ``study`` come ``objectives`` (search spaces and objectives) and ``models`` (torch only).
"""
