import pytest
import torch

from models import flush_denormals

flush_denormals()  # as study.run does, before any parallel work
torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    """The end-to-end modules (marked ``servers``) first: they are the longest, so under
    ``make test``'s two pytest-xdist workers they run beside the rest, not after it."""
    items.sort(key=lambda item: item.get_closest_marker("servers") is None)  # stable


@pytest.fixture(autouse=True)
def same_torch_threads():
    """A test that runs ``study.run --threads N`` in this process leaves torch's thread count
    as it found it: results of later tests depend on it (float sums in another order)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The suite's own data cache, for this process and every process a test starts: no
    test writes into the user's ``~/.cache/latent-study`` (or ``$STUDY_CACHE_DIR``)."""
    cache = tmp_path_factory.mktemp("data-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDY_CACHE_DIR", str(cache))
        mp.delenv("STUDY_DATA_DIR", raising=False)
        yield cache


@pytest.fixture(scope="session")
def fmnist():
    """Real Fashion-MNIST splits (from the Debian package or a download, into the cache)."""
    from study.data import loading as data

    return data.load("fashion-mnist")


@pytest.fixture(scope="session")
def fmnist_files(fmnist):
    """The four real, uncompressed Fashion-MNIST files (in the suite's cache)."""
    from study.data import loading as data

    return data.locate("fashion-mnist").files


@pytest.fixture(scope="session")
def small(fmnist):
    """A small real slice: 1,000 training and 500 validation images."""
    return fmnist.train.head(1000), fmnist.val.head(500)
