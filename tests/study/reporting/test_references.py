"""The references beside a study's numbers: PCA's MSE, exact on a case worked by hand, and
its table in a real ae study's report."""

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
