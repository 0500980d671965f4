"""adamlib.data: the digits loader."""
import pytest
import torch

from adamlib.data import Dataset, load_digits


def test_digits_shapes_types_and_classes():
    data = load_digits()
    assert isinstance(data, Dataset)
    assert data.X.shape == (1797, 64) and data.X.dtype == torch.float32
    assert data.y.shape == (1797,) and data.y.dtype == torch.long
    assert data.n_classes == 10 and data.m == 1797 and data.n_features == 64 and len(data) == 1797
    assert sorted(data.y.unique().tolist()) == list(range(10))
    assert torch.bincount(data.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_standardized_pixels_have_zero_mean_unit_variance():
    X = load_digits(dtype=torch.float64).X
    assert X.mean(dim=0).abs().max().item() < 1e-12
    std = X.std(dim=0)
    varying = std > 0
    assert varying.sum().item() == 61  # three pixels are 0 in every image: they stay 0
    assert torch.allclose(std[varying], torch.ones_like(std[varying]))
    assert X[:, ~varying].abs().max().item() == 0.0


def test_unstandardized_pixels_lie_in_unit_interval():
    X = load_digits(standardize=False).X
    assert X.min().item() == 0.0 and X.max().item() == 1.0


def test_same_call_gives_identical_tensors():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)


def test_dtype_and_to():
    data = load_digits(dtype=torch.float64)
    assert data.X.dtype == torch.float64
    moved = data.to(dtype=torch.float32)
    assert moved.X.dtype == torch.float32 and moved.y.dtype == torch.long and moved.n_classes == 10


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dtype": torch.int64}, "dtype"),
        ({"dtype": "float32"}, "dtype"),
        ({"standardize": "yes"}, "standardize"),
        ({"standardize": 1}, "standardize"),
        ({"device": "no-such-device"}, "device"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}=.*expected"):
        load_digits(**kwargs)


# --- generated data sets ---------------------------------------------------------------------

import gzip  # noqa: E402
import hashlib  # noqa: E402
import urllib.error  # noqa: E402

import numpy as np  # noqa: E402

from adamlib import data as data_module  # noqa: E402
from adamlib.data import (DataUnavailableError, binarize, load_cifar10, load_imdb,  # noqa: E402
                          load_mnist, load_mnist1d, make_sparse_bow)

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "fake_data", Path(__file__).resolve().parents[1] / "tools" / "fake_data.py")
fake_formats = importlib.util.module_from_spec(_spec)  # the writers of the real formats
_spec.loader.exec_module(fake_formats)


def test_mnist1d_is_generated_locally_and_repeatable():
    a = load_mnist1d(num_samples=500)   # pytest turns warnings into errors: the scipy one is filtered
    b = load_mnist1d(num_samples=500)
    assert a.X.shape == (400, 40) and a.y.shape == (400,) and a.n_classes == 10
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert load_mnist1d(num_samples=500, split="test").m == 100
    with pytest.raises(ValueError, match="^split="):
        load_mnist1d(split="val")


def test_sparse_bow_is_sparse_binary_balanced_and_repeatable():
    d = make_sparse_bow(n_docs=300, vocab=2000, doc_length=50, informative=100, seed=1)
    assert d.X.shape == (300, 2000) and d.n_classes == 2
    assert set(d.X.unique().tolist()) == {0.0, 1.0}
    assert 0.005 < d.X.mean().item() < 0.03          # about 1-2 % non-zeros
    assert d.y.sum().item() == 150                    # median threshold: balanced
    # Zipf: the most frequent word is in most documents, a rare one in few
    assert d.X[:, 0].mean().item() > 0.5 > d.X[:, -1].mean().item()
    assert torch.equal(d.X, make_sparse_bow(n_docs=300, vocab=2000, doc_length=50, informative=100, seed=1).X)
    with pytest.raises(ValueError, match="^informative="):
        make_sparse_bow(vocab=100, informative=50, skip_top=60)


# --- the real data sets, on small files written in their real formats -------------------------

def _register(monkeypatch, dataset, filename, path):
    url, _ = data_module.SOURCES[dataset][filename]
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(data_module.SOURCES, dataset, {**data_module.SOURCES[dataset], filename: (url, md5)})


def _write_tar_gz(monkeypatch, root, dataset, filename, members: dict[str, bytes]):
    """root/dataset/filename: a .tar.gz of these members, registered with its MD5 as the source."""
    path = fake_formats.write_tar_gz(root / dataset / filename, members)
    _register(monkeypatch, dataset, filename, path)


def _no_network(url, target):
    raise urllib.error.URLError("no network in the tests")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(data_module, "_download", _no_network)


def test_mnist_reads_idx_files(tmp_path, monkeypatch, offline):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5])
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(fake_formats.idx(array), mtime=0))
            _register(monkeypatch, "mnist", path.name, path)
    d = load_mnist(root=tmp_path)
    assert d.X.shape == (5, 784) and d.y.tolist() == [3, 1, 4, 1, 5]
    assert torch.allclose(d.X[0], torch.as_tensor(images[0].reshape(-1) / 255.0, dtype=torch.float32))
    assert load_mnist(split="test", root=tmp_path, flatten=False).X.shape == (5, 1, 28, 28)


def test_cifar10_reads_the_python_archive_and_whitens(tmp_path, monkeypatch, offline):
    rng = np.random.default_rng(0)
    batches = fake_formats.cifar10_batches(rng, 4, labels=[0, 1, 2, 9])
    _write_tar_gz(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", batches)
    d = load_cifar10(root=tmp_path)
    assert d.X.shape == (20, 3, 32, 32) and d.y.tolist() == [0, 1, 2, 9] * 5
    assert 0.0 <= d.X.min().item() and d.X.max().item() <= 1.0
    w = load_cifar10(root=tmp_path, whiten=True)
    assert w.X.shape == (20, 3, 32, 32) and abs(w.X.mean().item()) < 1e-5


def test_imdb_reads_the_archive_layout_and_keeps_the_most_frequent_words(tmp_path, monkeypatch, offline):
    reviews = {"aclImdb/train/pos/0_9.txt": "A great great film.<br />Great!",
               "aclImdb/train/pos/1_8.txt": "great acting, a film",
               "aclImdb/train/neg/0_2.txt": "A bad film",
               "aclImdb/test/neg/0_1.txt": "bad bad acting",
               "aclImdb/imdb.vocab": "a\nfilm\n"}
    _write_tar_gz(monkeypatch, tmp_path, "imdb", "aclImdb_v1.tar.gz",
                  {name: text.encode() for name, text in reviews.items()})
    d = load_imdb(root=tmp_path, num_words=3)
    # document frequencies in train: a 3, film 3, great 2, acting 1, bad 1 -> vocabulary a, film, great
    assert d.X.shape == (3, 3) and d.n_classes == 2
    assert d.y.tolist() == [0, 1, 1]                      # sorted: negatives first
    assert d.X.tolist() == [[1, 1, 0], [1, 1, 1], [1, 1, 1]]
    t = load_imdb(split="test", root=tmp_path, num_words=3)
    assert t.X.tolist() == [[0, 0, 0]] and t.y.tolist() == [0]


def test_offline_failure_names_the_file_and_what_to_do(tmp_path, offline):
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(root=tmp_path)
    first, *urls, last = str(info.value).splitlines()
    # one line saying what is wrong and where the files go, then one URL a line (ready for wget)
    assert str(tmp_path / "mnist") in first and "could not be downloaded" in first
    assert [u.strip().rsplit("/", 1)[1] for u in urls] == ["train-images-idx3-ubyte.gz",
                                                           "train-labels-idx1-ubyte.gz"]
    assert all(u.strip().startswith("https://") for u in urls) and "$ADAMLIB_DATA" in last


def test_corrupt_file_fails_its_checksum(tmp_path, offline):
    path = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    path.write_bytes(b"not the archive")
    with pytest.raises(DataUnavailableError, match="MD5 .* expected c58f30108f718f92721af3b95e74349a"):
        load_cifar10(root=tmp_path)


def test_binarize():
    d = binarize(load_digits(standardize=False))
    assert set(d.X.unique().tolist()) == {0.0, 1.0} and d.name == "digits-binary"


def test_mnist1d_is_generated_once_per_size_and_never_shared():
    from adamlib import data
    data._mnist1d_raw.cache_clear()
    train = data.load_mnist1d(num_samples=200, seed=3)
    test = data.load_mnist1d(num_samples=200, seed=3, split="test")
    info = data._mnist1d_raw.cache_info()
    assert (info.misses, info.hits) == (1, 1)       # the test split reused the generated set
    before = train.X.clone()
    train.X.add_(1.0)                                 # a caller's in-place change ...
    again = data.load_mnist1d(num_samples=200, seed=3)
    assert torch.equal(again.X, before)               # ... does not reach the cache
    assert train.X.shape == (160, 40) and test.X.shape == (40, 40)


# --- every missing file at once; accepting a local copy whose checksum differs -----------------

def test_missing_files_are_all_named_at_once_with_their_urls_and_folder(tmp_path, monkeypatch):
    tries = []

    def no_network(url, target):
        tries.append(url)
        raise urllib.error.URLError("no network in the tests")
    monkeypatch.setattr(data_module, "_download", no_network)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(root=tmp_path)
    message = str(info.value)
    folder = str(tmp_path / "mnist")
    assert message.startswith(f"mnist: 2 files are missing from {folder}")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert data_module.SOURCES["mnist"][name][0] in message
    assert "URLError" in message and "--data-dir" in message
    assert len(tries) == 1   # offline: one failed download, not one timeout per file


def test_a_present_file_is_not_named_missing(tmp_path, monkeypatch, offline):
    folder = tmp_path / "mnist"
    folder.mkdir()
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(fake_formats.idx(np.zeros((2, 28, 28))), mtime=0))
    _register(monkeypatch, "mnist", path.name, path)
    with pytest.raises(DataUnavailableError, match="^mnist: 1 file is missing") as info:
        load_mnist(root=tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)
    assert "train-images-idx3-ubyte.gz" not in str(info.value)
    with pytest.raises(DataUnavailableError, match=r"download=False"):
        load_mnist(root=tmp_path, download=False)


def _cifar_archive(monkeypatch, tmp_path, registered_md5=None):
    rng = np.random.default_rng(0)
    batches = fake_formats.cifar10_batches(rng, 4, labels=[0, 1, 2, 9])
    _write_tar_gz(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", batches)
    if registered_md5 is not None:
        url, _ = data_module.SOURCES["cifar10"]["cifar-10-python.tar.gz"]
        monkeypatch.setitem(data_module.SOURCES, "cifar10", {"cifar-10-python.tar.gz": (url, registered_md5)})


def test_a_differing_checksum_says_how_to_accept_the_file(tmp_path, monkeypatch, offline):
    monkeypatch.delenv("ADAMLIB_DATA_VERIFY", raising=False)
    _cifar_archive(monkeypatch, tmp_path, registered_md5="0" * 32)
    with pytest.raises(DataUnavailableError) as info:
        load_cifar10(root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "expected " + "0" * 32 in message
    assert "ADAMLIB_DATA_VERIFY=0" in message and "--no-verify" in message


def test_verification_off_uses_the_file_with_a_warning(tmp_path, monkeypatch, offline):
    _cifar_archive(monkeypatch, tmp_path, registered_md5="0" * 32)
    monkeypatch.setenv("ADAMLIB_DATA_VERIFY", "0")
    with pytest.warns(UserWarning, match="has MD5 .* used anyway"):
        d = load_cifar10(root=tmp_path)
    assert d.X.shape == (20, 3, 32, 32)
    # a file whose checksum matches gives no warning either way
    _cifar_archive_again = hashlib.md5((tmp_path / "cifar10" / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    url, _ = data_module.SOURCES["cifar10"]["cifar-10-python.tar.gz"]
    monkeypatch.setitem(data_module.SOURCES, "cifar10", {"cifar-10-python.tar.gz": (url, _cifar_archive_again)})
    load_cifar10(root=tmp_path)   # warnings are errors under pytest


@pytest.mark.parametrize("value", ["no", "false", "2"])
def test_a_bad_verification_switch_is_refused_by_name(tmp_path, monkeypatch, value, offline):
    monkeypatch.setenv("ADAMLIB_DATA_VERIFY", value)
    with pytest.raises(ValueError, match=rf"^ADAMLIB_DATA_VERIFY='{value}' is not accepted: expected 0"):
        load_cifar10(root=tmp_path)
