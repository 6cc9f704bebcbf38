"""The references beside a study's numbers: PCA's MSE, exact on a case worked by hand, and
its table in a real ae study's report."""

import optuna
import pytest
import torch

from study.reporting.references import pca_mse

from ..conftest import run_study


def test_pca_mse_is_exact_on_a_plane_with_noise_along_one_axis():
    """Points spread on the x-y plane (variances 9 and 4) plus noise of variance 0.01 along
    z, in 4 dimensions: 2 components leave exactly the z part, 1 leaves y's too, 4 leave 0."""
    g = torch.Generator().manual_seed(0)
    n = 20_000
    x = torch.zeros(n, 4, dtype=torch.float64)
    x[:, 0] = 3 * torch.randn(n, generator=g, dtype=torch.float64) + 5
    x[:, 1] = 2 * torch.randn(n, generator=g, dtype=torch.float64)
    x[:, 2] = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    train, val = x[: n // 2], x[n // 2 :]
    got = pca_mse(train, val, [1, 2, 4])
    # per-coordinate mean over the 4 coordinates of what the dropped components held
    assert got[2] == pytest.approx(0.01 / 4, rel=0.05)
    assert got[1] == pytest.approx((4 + 0.01) / 4, rel=0.05)
    assert got[4] == pytest.approx(0.0, abs=1e-20)
    # and exactly the residual of the projection onto the top-2 plane of the training data
    mean = train.mean(0)
    _, _, vt = torch.linalg.svd(train - mean, full_matrices=False)
    v = val - mean
    exact = (v - v @ vt[:2].T @ vt[:2]).square().mean()
    assert got[2] == pytest.approx(float(exact), rel=1e-9)


def test_an_ae_studys_report_sets_each_latent_size_beside_pca(tmp_path):
    assert run_study(tmp_path, "--objective", "ae", "--trials", "3", "--pruner", "none") == 0
    report = (tmp_path / "reports" / "ae-fashion-mnist" / "report.md").read_text()
    assert "## Against PCA" in report
    assert "PCA fitted by the harness on the same 300 training images" in report
    table = report.split("## Against PCA")[1].split("\n## ")[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert rows, table


class Flat(torch.nn.Module):
    """q(z|x) = p(z) = N(0, I) and a decoder that ignores z: every importance weight is
    p(x|z) = Bernoulli(x; sigmoid(c)), so the IWAE bound is that likelihood exactly."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def encode_stats(self, x):
        zeros = torch.zeros(len(x), 3)
        return zeros, zeros

    def decode_logits(self, z):
        return torch.full((len(z), 1, 28, 28), self.c)


def test_the_iwae_bound_is_exact_when_the_weights_are_constant():
    from study.reporting.references import iwae_nll

    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    expected = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            torch.full_like(x, 0.3), x, reduction="none"
        )
        .flatten(1)
        .sum(1)
    )
    for k in (1, 5, 50):
        assert torch.allclose(iwae_nll(Flat(0.3), x, k), expected, rtol=1e-5)


def test_a_vae_studys_report_sets_the_iwae_bound_beside_the_elbo(tmp_path):
    import re

    # S3, the classic BCE-trained MLP VAE (SEEDS.md), as the study's one trial.
    argv = ["--objective", "vae", "--trials", "1", "--no-baseline", "--enqueue-seeds", "s3-mlp-vae"]
    assert run_study(tmp_path, *argv) == 0
    report = (tmp_path / "reports" / "vae-fashion-mnist" / "report.md").read_text()
    section = report.split("## Test log-likelihood")[1].split("\n## ")[0]
    assert "first 1000 test images, trial 0's checkpoint" in section
    nelbo, bound = map(float, re.findall(r"([\d.]+) nats", section)[:2])
    assert "k = 100" in section and 0 < bound < nelbo

    # The estimate itself, on that model: k = 1 is the ELBO's estimate (a sampled KL in place
    # of the exact one), and a larger k, on the same seeded samples, is never looser.
    from models import evaluate, task_for
    from study.artifacts.encoder import Encoder
    from study.data.loading import load
    from study.reporting.references import iwae_nll

    study = optuna.load_study(
        study_name="vae-fashion-mnist", storage=f"sqlite:///{tmp_path}/optuna.db"
    )
    enc = Encoder.from_run(study.trials[0].user_attrs["mlflow_run_id"],
                           tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")  # fmt: skip
    test = load("fashion-mnist").test.head(500)
    x = test.images.float().div(255)
    elbo = evaluate(enc.model, task_for(enc.spec.model), test, device=torch.device("cpu"))["nelbo"]
    nll = {k: float(iwae_nll(enc.model, x, k, seed=3).mean()) for k in (1, 10, 100)}
    assert nll[1] == pytest.approx(elbo, rel=0.01)
    assert nll[100] <= nll[10] <= nll[1]


def test_a_bad_number_of_importance_samples_is_one_line_and_exit_2(tmp_path, capsys):
    from study import report

    for bad in ("-1", "0", "many"):
        with pytest.raises(SystemExit) as stop:  # argparse's exit, as from the shell
            report.main(["--iwae-samples", bad, "--storage", f"sqlite:///{tmp_path}/o.db"])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--iwae-samples" in err[0] and bad in err[0], err
    assert list(tmp_path.iterdir()) == []
