"""No credential lands in a record: URLs are redacted, every text that leaves is scrubbed."""

from pathlib import Path

import pytest

import objectives
from objectives import Objective
from study import run
from study.execution import loop
from study.settings import RunSettings, record
from study.stores.locations import parse_storage, parse_tracking
from study.stores.secrets import redact, scrub, secrets_in

from ..conftest import TINY, stores
from ..helpers import artifacts, load

SECRET = "Hunter2-secret-9c1f"


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"postgresql://u:{SECRET}@h:5432/db", "postgresql://u:***@h:5432/db"),
        (f"postgresql://h/db?user=u&password={SECRET}", "postgresql://h/db?user=u&password=***"),
        (
            f"postgresql://u@h/db?sslmode=require&sslpassword={SECRET}",
            "postgresql://u@h/db?sslmode=require&sslpassword=***",
        ),
        (f"http://u:{SECRET}@mlflow:5000", "http://u:***@mlflow:5000"),
        (f"http://mlflow:5000/?token={SECRET}", "http://mlflow:5000/?token=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////abs/path/optuna.db", "sqlite:////abs/path/optuna.db"),
        ("journal:mlruns/journal.log", "journal:mlruns/journal.log"),
    ],
)
def test_every_credential_form_is_redacted(url, shown):
    assert redact(url) == shown


def test_percent_encoded_and_environment_secrets_are_scrubbed(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "env-pg-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "env-token-secret")
    secrets = secrets_in("postgresql://u:p%40ss-word@h/db")
    text = "p@ss-word p%40ss-word env-pg-secret env-token-secret"
    assert scrub(text, secrets) == "*** *** *** ***"


def test_the_settings_logged_to_mlflow_hold_no_password():
    settings = RunSettings(
        storage=parse_storage(f"postgresql://u@h/db?password={SECRET}"),
        tracking=parse_tracking(f"http://admin:{SECRET}@mlflow:5000"),
    )
    logged = record(settings)
    assert SECRET not in str(logged) and SECRET not in repr(settings)
    assert logged["storage"] == "postgresql://u@h/db?password=***"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@127.0.0.1:1/optuna",
        f"postgresql://user@127.0.0.1:1/optuna?password={SECRET}",
    ],
)
def test_an_unreachable_database_error_names_it_without_the_password(tmp_path, capsys, url):
    argv = [*TINY, "--storage", url, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "127.0.0.1:1" in err
    assert SECRET not in err


def test_a_trial_whose_error_quotes_a_secret_records_it_scrubbed(tmp_path, monkeypatch, capsys):
    """An exception message (and its traceback) quoting a credential from the environment:
    the trial's reason, its MLflow tag and traceback artifact, and the console show ***."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)

    def leaky(trial, *, max_epochs):
        trial.suggest_int("x", 0, 1)
        raise RuntimeError(f"could not log in with password {SECRET}")

    monkeypatch.setitem(
        objectives.OBJECTIVES, "ae", Objective("ae", "minimize", "mse", leaky, "leaky")
    )
    assert (
        run.main([*TINY, *stores(tmp_path), "--no-refit", "--objective", "ae", "--trials", "2"])
        == 1
    )
    study, client, _, runs = load(tmp_path, "ae-fashion-mnist")
    assert all("password ***" in t.user_attrs["fail_reason"] for t in study.trials)
    for r in runs:
        assert "password ***" in r.data.tags["fail_reason"]
        assert "traceback.txt" in artifacts(client, r.info.run_id)
        local = client.download_artifacts(r.info.run_id, "traceback.txt", str(tmp_path))
        text = Path(local).read_text()
        assert "RuntimeError" in text and SECRET not in text
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


def test_a_bug_s_traceback_is_printed_without_the_credentials(tmp_path, monkeypatch, capsys):
    from study.execution import session

    def broken(*args, **kwargs):
        raise RuntimeError(f"unexpected: connecting as u:{SECRET}")

    monkeypatch.setattr(session, "open_session", broken)
    url = f"postgresql://u:{SECRET}@127.0.0.1:1/x"
    monkeypatch.setattr(loop, "check_storage", lambda s: None)
    argv = [*TINY, "--storage", url, "--tracking-uri", "none"]
    assert run.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected: connecting as u:***" in err
    assert SECRET not in err
