"""What a study leaves behind when a session ends: the best trial's encoder as a standalone
``torch.export`` program in its MLflow run, and the study report."""

from __future__ import annotations

import sys

from study.stores.secrets import scrub, secrets_in


def publish_best(session, best) -> str | None:
    """Export the best encoder and write the report; the best trial's run id, if exported."""
    encoder_run = None
    if session.tracker is not None:
        encoder_run = publish_encoder_of(session.tracker, best)
        if encoder_run is not None:
            register(session.tracker, best)
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
        return None
    tracker.client.set_tag(tracker.parent_run_id, "best_encoder_uri", uri)
    print(f"Encoder of trial {best.number}: {uri}")
    return run_id


def register(tracker, best) -> None:
    """The best encoder (and classifier) in the Model Registry under the alias ``best``."""
    from study.tracking.registry import ALIAS, register_best

    try:
        versions = register_best(
            tracker.client, tracker.experiment_id, tracker.study_name, best,
            tracking_uri=tracker.tracking.url,
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - the study's results are saved either way
        line = scrub(" ".join(str(e).split())[:300], secrets_in(tracker.tracking.url))
        print(f"warning: could not register the best trial's models: {line}", file=sys.stderr)
        return
    for name, version in versions.items():
        print(f"Registered: models:/{name}@{ALIAS} (version {version}, trial {best.number})")


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
