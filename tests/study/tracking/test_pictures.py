"""The pictures every trial draws: the PCA behind the latent scatter, the scatter PNG and the
reconstruction grid."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from study.tracking import pictures


def codes(fmnist, n=1500):
    """Real wide codes: Fashion-MNIST pixels (784-d), as a model without a bottleneck has."""
    return fmnist.val.images[:n].float().div(255).flatten(1), fmnist.val.labels[:n]


def test_wide_codes_get_the_exact_principal_components(fmnist):
    z, _ = codes(fmnist)
    assert z.shape[1] > pictures.EXACT_PCA_WIDTH  # the randomized path
    xy, how = pictures.project_2d(z)
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    exact = centred @ v[:2].T
    assert how == "PCA" and xy.shape == (len(z), 2)
    for i in range(2):  # the same axes, up to sign
        r = torch.corrcoef(torch.stack([xy[:, i], exact[:, i]]))[0, 1].abs()
        assert r > 0.9999, (i, r)


def test_the_projection_leaves_the_global_random_stream_alone(fmnist):
    """The next trial trains from torch's global stream: drawing a picture must not move it."""
    z, _ = codes(fmnist)
    before = torch.get_rng_state()
    pictures.project_2d(z)
    assert torch.equal(before, torch.get_rng_state())
    assert torch.equal(pictures.project_2d(z)[0], pictures.project_2d(z)[0])


def test_narrow_codes_are_drawn_as_they_are():
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(pictures.project_2d(z)[0], z)
    xy, how = pictures.project_2d(torch.tensor([[1.0], [2.0]]))
    assert how == "latent" and xy.tolist() == [[1.0, 0.0], [2.0, 0.0]]


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def near(image, colour, box, opacity=1.0):
    """How many pixels in ``box`` have ``colour`` (drawn at ``opacity`` over white)."""
    left, top, right, bottom = box
    patch = image[top:bottom, left:right]
    seen = opacity * np.array(colour) + (1 - opacity) * 255
    return (np.abs(patch - seen).sum(-1) < 12).sum()


DOTS = 153 / 255  # the points' opacity


class Pixels(torch.nn.Module):
    """An encoder whose codes are the 784 pixels: wide, and classes that separate."""

    def encode(self, x):
        return x.flatten(1)


def test_the_scatter_draws_each_class_in_its_colour_with_a_legend(fmnist, tmp_path):
    _, labels = codes(fmnist)
    path = pictures.latent_scatter(
        Pixels(), fmnist.val.images[:1500], labels, tmp_path / "latent.png",
        dataset="fashion-mnist", title="fashion-mnist validation",
    )  # fmt: skip
    image = rgb(path)
    assert image.shape == (pictures.HEIGHT, pictures.WIDTH, 3)
    left, top, right, bottom = pictures.BOX
    for c, colour in enumerate(pictures.TAB10):
        assert near(image, colour, pictures.BOX, DOTS) > 50, c  # its points, inside the frame
        cy = top + 8 + 16 * c
        assert near(image, colour, (right + 9, cy - 4, right + 18, cy + 4)) > 5, c  # legend
    text = image[: top - 2, left:right]  # the title above the frame
    assert (text.sum(-1) < 200).sum() > 100


def test_a_class_missing_and_codes_that_are_not_finite(tmp_path):
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [np.nan, 2.0], [np.inf, 0.0]])
    y = np.array([0, 0, 1, 1])
    path = tmp_path / "latent.png"
    pictures.scatter_png(xy, y, [str(i) for i in range(10)], "t", path)
    image = rgb(path)
    assert near(image, pictures.TAB10[0], pictures.BOX, DOTS) > 0
    assert near(image, pictures.TAB10[1], pictures.BOX, DOTS) == 0  # both its codes were not finite
    pictures.scatter_png(xy[2:], y[2:], ["a"], "nothing finite", tmp_path / "empty.png")
    assert rgb(tmp_path / "empty.png").shape == (pictures.HEIGHT, pictures.WIDTH, 3)


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (-0.63, 0.61, ["-0.5", "0", "0.5"]),  # 0, not -1.1e-16
        (0.0, 1.0, ["0", "0.2", "0.4", "0.6", "0.8", "1"]),
        (-10.3, 8.7, ["-10", "-5", "0", "5"]),
    ],
)
def test_ticks_are_round_numbers(lo, hi, expected):
    assert pictures.tick_labels(pictures.nice_ticks(lo, hi)) == expected


def test_ticks_far_from_zero_are_told_apart():
    labels = pictures.tick_labels(pictures.nice_ticks(1e8, 1e8 + 3))
    assert len(set(labels)) == len(labels) > 2 and labels[0] == "100000000"


def test_the_text_is_in_matplotlibs_font():
    assert pictures.font(10).path.endswith("mpl-data/fonts/ttf/DejaVuSans.ttf")


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("width", [5, 200])
def test_a_handful_of_codes_still_gets_two_axes(tmp_path, n, width):
    """``--limit-val`` can leave very few validation images; a single code has one
    principal axis, not two."""
    xy, how = pictures.project_2d(torch.randn(n, width, generator=torch.Generator().manual_seed(0)))
    assert how == "PCA" and xy.shape == (n, 2) and torch.isfinite(xy).all()
    pictures.scatter_png(
        xy.numpy(), np.arange(n), [str(i) for i in range(10)], "t", tmp_path / "l.png"
    )
    assert rgb(tmp_path / "l.png").shape == (pictures.HEIGHT, pictures.WIDTH, 3)


def test_a_trials_scatter_takes_its_codes_from_the_last_validation_pass(
    tmp_path, small, monkeypatch
):
    """No second pass over the 1,500 images: the codes the last evaluation computed, the
    same as encoding them again."""
    from objectives import OBJECTIVES

    from ..helpers import Harness, artifacts, load

    given = []
    scatter = pictures.latent_scatter

    def spy(model, images, labels, path, **kw):
        codes = kw["codes"]
        with torch.inference_mode():
            again = model.encode(images[: len(codes)].float().div(255)).flatten(1)
        given.append((len(codes), torch.allclose(codes, again, atol=1e-5)))
        return scatter(model, images, labels, path, **kw)

    monkeypatch.setattr(pictures, "latent_scatter", spy)
    h = Harness(tmp_path, small, objective="classifier")
    assert h.run(OBJECTIVES["classifier"]).state == "COMPLETE"
    assert given == [(len(small[1]), True)]
    _, client, _, (run,) = load(tmp_path)
    assert "pictures/latent.png" in artifacts(client, run.info.run_id, "pictures")


def test_the_reconstruction_grid_shows_the_images_above_their_reconstructions(fmnist, tmp_path):
    """Both rows 3x, with 4-pixel white margins, in one grey channel (torchvision's
    ``save_image`` layout: the same pixels it writes three times over)."""

    class Darker(torch.nn.Module):
        def encode(self, x):
            return x

        def decode(self, z):
            return z * 0.5

    images = fmnist.val.images[:20]
    path = pictures.reconstruction_grid(Darker(), images, tmp_path / "r.png", n=4)
    with Image.open(path) as im:
        assert im.mode == "L"
        grid = np.asarray(im)
    assert grid.shape == (2 * 84 + 3 * 4, 4 * 84 + 5 * 4)
    for i in range(4):
        left = 4 + i * 88
        real = grid[4 : 4 + 84, left : left + 84]
        recon = grid[92 : 92 + 84, left : left + 84]
        expected = images[i, 0].numpy().repeat(3, 0).repeat(3, 1)
        assert np.array_equal(real, expected)
        assert np.abs(recon.astype(int) - (expected / 2).round()).max() <= 1
    assert (grid[:4] == 255).all() and (grid[:, :4] == 255).all()


@pytest.mark.parametrize("rows,cols", [(2, 4), (1, 3), (3, 5)])
def test_tiles_are_laid_out_as_torchvisions_make_grid_lays_them_out(rows, cols):
    from torchvision.utils import make_grid

    images = torch.rand(rows * cols, 1, 12, 9)
    expected = make_grid(images, nrow=cols, padding=4, pad_value=1.0)[0]
    assert torch.equal(pictures.tile(images[:, 0], rows=rows, padding=4), expected)


def test_drawing_the_grid_does_not_import_torchvision(tmp_path):
    """A worker that never downloads data never needs torchvision (~0.1-0.2 s to import)."""
    code = f"""
import sys, torch
from study.tracking import pictures

class Same(torch.nn.Module):
    def encode(self, x):
        return x

    def decode(self, z):
        return z

images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
pictures.reconstruction_grid(Same(), images, {str(tmp_path / "r.png")!r}, n=4)
print("torchvision" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
    assert (tmp_path / "r.png").exists()
