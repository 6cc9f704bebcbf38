"""Credentials: never in a record. URLs are shown redacted; any text that leaves the process
(messages, reasons, tracebacks) is scrubbed of every credential this process knows, from the
URLs it was given and from the environment (``PGPASSWORD``, ``MLFLOW_TRACKING_PASSWORD``,
``MLFLOW_TRACKING_TOKEN``). Prefer those variables, or a PostgreSQL password / service file,
to passwords in URLs: a URL also shows in the process list.
"""

from __future__ import annotations

import contextlib
import os
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from study.errors import UsageError

# Query parameters that carry a credential (libpq's password/sslpassword, tokens, keys).
SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|auth|credential", re.IGNORECASE)
# Credentials MLflow and libpq read from the environment.
SECRET_ENV = ("PGPASSWORD", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def redact(url: str) -> str:
    """``url`` with every credential replaced by ``***``: userinfo passwords and secret-named
    query parameters (``postgresql://u:***@h/db``, ``...?user=u&password=***``)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [k for k, _ in pairs if SECRET_PARAM.search(k)]
    if netloc == parts.netloc and not secret:
        return url  # nothing to hide (and urlunsplit would rewrite sqlite:////abs/path)
    query = urlencode([(k, "***" if k in secret else v) for k, v in pairs], safe="*:/@")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# Credentials of URLs this process was handed other than on its command line (a worker's
# settings come on its stdin): every scrub includes them.
_REMEMBERED: set[str] = set()


def remember(*urls: str) -> None:
    """Scrub the credentials in ``urls`` from all text from now on (see ``secrets_in``)."""
    _REMEMBERED.update(secrets_in(*urls))


def secrets_in(*urls: str) -> set[str]:
    """The credential values in ``urls``, in the environment and remembered, to scrub."""
    found = {os.environ.get(name, "") for name in SECRET_ENV} | _REMEMBERED
    for url in urls:
        if "://" not in url:
            continue
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            if parts.password:
                found |= {parts.password, unquote(parts.password)}
            found |= {v for k, v in parse_qsl(parts.query) if SECRET_PARAM.search(k)}
    return {s for s in found if len(s) >= 3}


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


DATABASE_CREDENTIALS = (
    "set PGPASSWORD, or a line in ~/.pgpass (or $PGPASSFILE), or a service in "
    "~/.pg_service.conf (postgresql:///?service=NAME), for the URL's user"
)
TRACKING_CREDENTIALS = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to "
    "a user of the server's basic-auth app that may create experiments and runs"
)


def credentials_refused(message: str) -> bool:
    """Whether a database error says the password was wrong or missing."""
    text = message.lower()
    return "password authentication failed" in text or "no password supplied" in text


def check_tracking_credentials(url: str, shown: str) -> None:
    """An authenticated call to an MLflow server: refused credentials are a usage error."""
    import requests

    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    auth = (username, password) if username and password else None
    headers = {"Authorization": f"Bearer {token}"} if token and auth is None else {}
    try:
        r = requests.get(
            url + "/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=auth,
            headers=headers,
            timeout=10,
        )
    except requests.RequestException as e:
        raise UsageError(
            f"MLflow tracking server {shown!r} is unreachable ({type(e).__name__}); "
            "start it or fix --tracking-uri"
        ) from None
    if r.status_code in (401, 403):
        given = "refused the credentials" if (auth or headers) else "needs credentials"
        raise UsageError(
            f"MLflow tracking server {shown!r} {given} ({r.status_code}); {TRACKING_CREDENTIALS}"
        )
