"""Real servers on loopback for the end-to-end tests (marked ``servers``).

Skip them locally with ``pytest -m "not servers"``; CI runs them (``.ci/run`` installs
PostgreSQL and Chromium when missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Server(str):
    """A server's URL (a ``str``) that can also be stopped and started again, on the same
    port and with the same data: what a restart or a failover looks like to its clients."""

    def __new__(cls, url: str, start, stop):
        self = super().__new__(cls, url)
        self._start, self._stop = start, stop
        return self

    def start(self) -> None:
        self._start()

    def stop(self) -> None:
        self._stop()


@contextlib.contextmanager
def mlflow_server(
    backend: str,
    workdir: Path,
    *,
    serve_artifacts: bool = False,
    admin_password: str | None = None,
    auth_cache_s: int = 300,
):
    """``mlflow server`` on a free loopback port; yields its URL (a ``Server``).

    ``admin_password``: run MLflow's basic-auth app, whose admin user ``admin`` has it (the
    clients then need MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD). ``auth_cache_s``:
    how long the app trusts a checked password (0: a scrypt check per request, MLflow's default;
    ~80 ms of the server's CPU each here, ``bench.auth``).
    """
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if serve_artifacts:
        cmd += ["--serve-artifacts", "--artifacts-destination", str(workdir / "artifacts")]
    env = dict(os.environ)
    if admin_password is not None:
        config = workdir / "basic-auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{workdir}/basic-auth.db\n"
            f"admin_username = admin\nadmin_password = {admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {auth_cache_s}\n"
        )
        cmd += ["--app-name", "basic-auth"]
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_FLASK_SERVER_SECRET_KEY="tests")
    log = (workdir / "mlflow-server.log").open("a")
    url = f"http://127.0.0.1:{port}"
    procs = []

    def start() -> None:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=env,
        )  # fmt: skip
        procs.append(proc)
        wait_until(lambda: http_ok(f"{url}/health"), timeout=90, what="mlflow server", proc=proc)

    start()
    try:
        yield Server(url, start, lambda: stop(procs[-1]))
    finally:
        stop(procs[-1])
        log.close()


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        raise RuntimeError(
            "headless Chromium is missing: apt-get install chromium chromium-driver "
            '(make test installs them), or skip these tests with -m "not servers"'
        )
    return browser, driver


# Flags for an offline machine: no sandbox (root in CI), no GPU, and no background
# connections (refused here, and slow to time out).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1400,1000",
]


@contextlib.contextmanager
def chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    d = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield d
    finally:
        d.quit()


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[4]))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            "PostgreSQL is missing: apt-get install postgresql (make test installs it), or "
            'skip these tests with -m "not servers"'
        )
    return path


@contextlib.contextmanager
def postgres(databases=("optuna", "mlflow"), *, password: str | None = None):
    """A throw-away PostgreSQL cluster on a free loopback port, user ``postgres``.

    Without ``password``: trust authentication. With it: scram-sha-256, the user's password
    is ``password`` (clients give it, e.g. through PGPASSWORD). Yields
    ``postgresql://postgres@127.0.0.1:PORT`` (no password in it; a ``Server``, which
    ``stop()`` and ``start()`` restart); the databases named exist.
    As root the server runs as the ``postgres`` user (initdb refuses root).
    """
    import tempfile

    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    data = Path(tempfile.mkdtemp(prefix="pg-"))
    if as_root:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    auth = ["-A", "trust"]
    if password is not None:
        pwfile = data / "pw"
        pwfile.write_text(password + "\n")
        if as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(
        [*prefix, _pg_bin("initdb"), "-D", str(data / "db"), "-U", "postgres", *auth]
        + ["-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    options += " -c max_connections=200"
    ctl = [*prefix, _pg_bin("pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log")]

    def start() -> None:
        subprocess.run([*ctl, "-o", options, "-w", "start"], check=True, capture_output=True)

    def stop_fast() -> None:  # as a maintenance restart does: connections are closed
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True)

    start()
    url = f"postgresql://postgres@127.0.0.1:{port}"
    try:
        import psycopg

        with psycopg.connect(f"{url}/postgres", autocommit=True, password=password) as conn:
            for db in databases:
                conn.execute(f"CREATE DATABASE {db}")
        yield Server(url, start, stop_fast)
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
