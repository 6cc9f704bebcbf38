import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fmnist():
    """Real Fashion-MNIST splits (from the Debian package or torchvision's root)."""
    from study import data

    return data.load("fashion-mnist")


@pytest.fixture(scope="session")
def small(fmnist):
    """A small real slice: 1,000 training and 500 validation images."""
    return fmnist.train.head(1000), fmnist.val.head(500)
