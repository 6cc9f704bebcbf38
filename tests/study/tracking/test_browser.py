"""A person browsing a study in the MLflow UI: headless Chromium against ``mlflow server``."""

import os
import shutil

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.servers import chromium, mlflow_server

from ..helpers import load

pytestmark = pytest.mark.servers


def body_has(*texts):
    def check(driver):
        body = driver.find_element(By.TAG_NAME, "body").text
        return all(t in body for t in texts)

    check.texts = texts
    return check


def scrolled_through(*texts):
    """Every one of ``texts`` seen while scrolling down the charts, a step per poll: the last
    chart drawn is scrolled into view, which draws the next ones (charts render as they
    appear, and those scrolled far past may be taken down again)."""
    seen = set()

    def scroll_and_check(driver):
        seen.update(t for t in texts if t in driver.find_element(By.TAG_NAME, "body").text)
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.main-svg")
        if charts:
            driver.execute_script("arguments[0].scrollIntoView()", charts[-1])
        return seen >= set(texts)

    scroll_and_check.texts = [t for t in texts if t not in seen]
    return scroll_and_check


class Wait(WebDriverWait):
    """A wait whose timeout says what was missing and what the page showed instead."""

    def until(self, method, message=""):
        try:
            return super().until(method, message)
        except TimeoutException:
            body = self._driver.find_element(By.TAG_NAME, "body").text
            missing = [t for t in getattr(method, "texts", ()) if t not in body]
            raise AssertionError(
                f"page {self._driver.current_url} never showed {missing or method}; "
                f"it showed:\n{body[:3000]}"
            ) from None


def screenshot(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("STUDY_SCREENSHOTS"):  # e.g. CI keeps them
        os.makedirs(os.environ["STUDY_SCREENSHOTS"], exist_ok=True)
        shutil.copy(path, os.environ["STUDY_SCREENSHOTS"])
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def test_mlflow_ui_lists_the_trials_and_renders_curves_and_artifacts(study_copy, tmp_path):
    study, client, parents, runs = load(study_copy)
    exp = client.get_experiment_by_name(study.study_name).experiment_id
    best = study.best_trial.user_attrs["mlflow_run_id"]
    with (
        mlflow_server(f"sqlite:///{study_copy}/mlflow.db", tmp_path) as url,
        chromium(tmp_path / "profile") as d,
    ):
        wait = Wait(d, 60)
        d.get(f"{url}/#/experiments/{exp}/runs?workflowType=machine_learning")
        wait.until(body_has(study.study_name, f"{len(runs) + 1} matching runs"))
        # Trial runs are nested under the study's parent run: unfold it.
        expand = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecell']")
        )
        expand.click()
        names = {f"trial-{t.number}" for t in study.trials}
        wait.until(body_has(*names))
        screenshot(d, tmp_path, "mlflow-runs.png")

        d.get(f"{url}/#/experiments/{exp}/runs/{best}/model-metrics")
        # Charts render lazily as they scroll into view: the first per-epoch curve...
        n = study.best_trial.number
        wait.until(body_has("Model metrics", "cost_params", f"trial-{n} (epoch_time)"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.main-svg")) >= 3)
        # ...and the training curves further down, once scrolled to.
        wait.until(scrolled_through("train_acc", f"trial-{n} (train_loss)", "time_train_s"))
        screenshot(d, tmp_path, "mlflow-metrics.png")

        d.get(f"{url}/#/experiments/{exp}/runs/{best}/artifacts")
        wait.until(body_has("checkpoint", "pictures", "encoder"))
        d.find_element(By.XPATH, "//*[normalize-space(text())='pictures']").click()
        wait.until(body_has("latent.png"))
        d.find_element(By.XPATH, "//*[normalize-space(text())='latent.png']").click()
        wait.until(
            lambda d: any(
                d.execute_script("return arguments[0].naturalWidth", img) > 100
                for img in d.find_elements(By.CSS_SELECTOR, "img[src^='blob:']")
            )
        )
        screenshot(d, tmp_path, "mlflow-artifacts.png")

        # The study's report hangs off the parent run.
        d.get(f"{url}/#/experiments/{exp}/runs/{parents[0].info.run_id}/artifacts")
        wait.until(body_has("report"))

        # The Model Registry: the study's best encoder and classifier, alias "best".
        name = f"{study.study_name}-encoder"
        d.get(f"{url}/#/models")
        wait.until(body_has(name, f"{study.study_name}-classifier", "Aliased versions"))
        d.get(f"{url}/#/models/{name}")
        wait.until(body_has(name, "Version 1", "Aliases", "best"))
        screenshot(d, tmp_path, "mlflow-registry.png")


def test_optuna_dashboard_shows_a_trials_pictures_and_its_mlflow_link(study_copy, tmp_path):
    import subprocess
    import sys

    from tests.servers import free_port, http_ok, stop, wait_until

    study, client, _, _ = load(study_copy)
    trial = study.best_trial
    port = free_port()
    cmd = [sys.executable, "-m", "study.dashboard", "--port", str(port)]
    cmd += ["--storage", f"sqlite:///{study_copy}/optuna.db"]
    cmd += ["--tracking-uri", f"sqlite:///{study_copy}/mlflow.db"]
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/api/studies"), timeout=90, what="dashboard", proc=proc)
        with chromium(tmp_path / "profile") as d:
            wait = Wait(d, 60)
            d.get(f"{url}/dashboard/studies/1/trials?numbers={trial.number}")
            wait.until(body_has(f"Trial {trial.number}", "Note", "Artifacts", "latent.png"))
            link = d.find_element(By.LINK_TEXT, f"trial-{trial.number}")
            assert trial.user_attrs["mlflow_run_id"] in link.get_attribute("href")
            wait.until(
                lambda d: any(
                    d.execute_script("return arguments[0].naturalWidth", img) > 100
                    for img in d.find_elements(By.CSS_SELECTOR, "img[src*='/artifacts/']")
                )
            )
            screenshot(d, tmp_path, "optuna-dashboard.png")
    finally:
        stop(proc)
        log.close()
