"""What a study leaves behind when a session ends: the best trial's encoder as a standalone
``torch.export`` program in its MLflow run, and the study report."""

from __future__ import annotations

import sys

from study.stores.secrets import scrub, secrets_in


def publish_best(session, best, refit=None) -> str | None:
    """Export the best encoder, register it and the refit, and write the report; the best
    trial's run id, if exported."""
    from study.execution.refit import summary_line

    encoder_run = None
    if session.tracker is not None:
        encoder_run = publish_encoder_of(session.tracker, best)
        if encoder_run is not None:
            register(session.tracker, best, refit)
    if refit is not None and (session.tracker is None or encoder_run is None):
        print(summary_line(refit, None))
    if session.settings.report:
        write_study_report(session)
    return encoder_run


def publish_encoder_of(tracker, best) -> str | None:
    """Log the best trial's encoder as a torch.export program to its run; its run id."""
    from study.artifacts.encoder import publish_encoder

    run_id = best.user_attrs.get("mlflow_run_id") if best is not None else None
    if not run_id:
        return None
    try:
        uri = publish_encoder(tracker.client, run_id, tracking=tracker.tracking)
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        line = scrub(str(e), secrets_in(tracker.tracking.url))
        print(f"warning: could not export the best trial's encoder: {line}", file=sys.stderr)
        return None
    if uri is None:
        from study.artifacts import checkpoint

        run = tracker.client.get_run(run_id)
        if checkpoint.should_have_checkpoint(run):
            print(f"warning: {checkpoint.missing_checkpoint(run)}; its encoder is not "
                  "published or registered", file=sys.stderr)  # fmt: skip
        return None
    tracker.client.set_tag(tracker.parent_run_id, "best_encoder_uri", uri)
    print(f"Encoder of trial {best.number}: {uri}")
    return run_id


def register(tracker, best, refit=None) -> None:
    """The best trial's encoder (and classifier) in the Model Registry under ``best-trial``,
    and the refit's under ``best`` (without a refit, the trial's is ``best`` too)."""
    from study.execution.refit import summary_line
    from study.tracking.registry import ALIAS, TRIAL_ALIAS, register_best, register_run

    client = tracker.client
    try:
        versions = register_best(
            client, tracker.experiment_id, tracker.study_name, best,
            tracking_uri=tracker.tracking.url, alias=TRIAL_ALIAS,
        )  # fmt: skip
        if refit is not None and refit.run_id is not None:
            refit_versions = register_run(
                client, tracker.experiment_id, tracker.study_name, refit.run_id,
                objective=best.user_attrs.get("spec", {}).get("objective", ""),
                tags={"optuna.trial_number": refit.trial, "source": "refit",
                      f"test_{refit.metric}": refit.score},
                tracking_uri=tracker.tracking.url, alias=ALIAS,
            )  # fmt: skip
        else:
            for name, version in versions.items():
                client.set_registered_model_alias(name, ALIAS, version)
            refit_versions = None
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        line = scrub(" ".join(str(e).split())[:300], secrets_in(tracker.tracking.url))
        print(f"warning: could not register the best models: {line}", file=sys.stderr)
        return
    for name, version in versions.items():
        print(f"Registered: models:/{name}@{TRIAL_ALIAS} (version {version}, trial {best.number})")
    if refit_versions is None:
        names = ", ".join(f"models:/{n}@{ALIAS}" for n in versions)
        print(f"Registered: {names} (the best trial's own: no refit)")
        return
    uri = None
    for name, version in refit_versions.items():
        uri = uri or f"models:/{name}@{ALIAS}"
        print(f"Registered: models:/{name}@{ALIAS} (version {version}, refit of trial "
              f"{refit.trial})")  # fmt: skip
    print(summary_line(refit, uri))
    client.set_tag(tracker.parent_run_id, "refit_run_id", refit.run_id)


def write_study_report(session) -> None:
    from study.reporting.report import write_report

    settings, tracker = session.settings, session.tracker
    try:
        path = write_report(
            session.study,
            settings.storage.reports_root / settings.name,
            client=tracker.client if tracker else None,
            parent_run_id=tracker.parent_run_id if tracker else None,
        )
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        line = scrub(str(e), secrets_in(settings.storage.url, settings.tracking.url))
        print(f"warning: could not write the study report: {line}", file=sys.stderr)
        return
    print(f"Report:  {path}")
