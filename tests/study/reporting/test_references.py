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
