"""Data sets for the chapters and the paper's experiments.

Every loader returns a :class:`Dataset`: the whole data set as two tensors on the requested
device. The chapters' data sets are small enough to live in memory, so a training loop slices
mini-batches out of ``X`` and ``y`` directly (see :func:`adamlib.train.train`).

Loaders here need no network. The fast-mode data sets ship with a package (scikit-learn's
digits) or are generated locally; loaders of the paper's real data sets (MNIST, CIFAR-10,
IMDB) for full mode download each file once (see ``SOURCES``), verify its MD5 checksum
and cache it under ``$ADAMLIB_DATA`` (default ``~/.cache/adamlib/data``); offline they fail
with a message naming every missing file, its URL and the folder to put it in. A local copy
whose checksum differs is refused unless ``$ADAMLIB_DATA_VERIFY=0`` (:data:`VERIFY_VARIABLE`).
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

import torch

__all__ = ["Dataset", "load_digits", "load_mnist1d", "make_sparse_bow", "load_mnist", "load_cifar10",
           "load_imdb", "binarize", "zca_whiten", "fetch", "fetch_all", "verification_enabled", "SOURCES",
           "DataUnavailableError"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Dataset:
    """A labelled classification data set held as tensors.

    Attributes:
        X: inputs, a float tensor of shape ``(m, n_features)``; row ``i`` is example ``x^(i)``.
        y: targets, a long tensor of shape ``(m,)`` with values in ``range(n_classes)``.
        n_classes: the number of classes.
        name: a short name for plots and logs.
    """

    X: torch.Tensor
    y: torch.Tensor
    n_classes: int
    name: str = ""

    @property
    def m(self) -> int:
        """The number of examples (the talk's ``m``)."""
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        """The number of input features (the talk's ``n``)."""
        return self.X.shape[1]

    def __len__(self) -> int:
        return self.m

    def to(self, device=None, dtype=None) -> "Dataset":
        """A copy on another device and/or with another float dtype for ``X``."""
        return Dataset(self.X.to(device=device, dtype=dtype), self.y.to(device=device),
                       self.n_classes, self.name)


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"dtype={dtype!r} is not accepted: expected a floating torch dtype, one of "
            + ", ".join(str(d) for d in _FLOAT_DTYPES)
        )
    return dtype


def _check_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not accepted: expected a torch device such as 'cpu' or 'cuda'"
        ) from error


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not accepted: expected True or False")
    return value


def load_digits(device="cpu", dtype=torch.float32, standardize: bool = True) -> Dataset:
    """scikit-learn's handwritten digits: 1797 images of 8x8 pixels, 10 classes, no download.

    Args:
        device: where the tensors live (``"cpu"``, ``"cuda"``, a ``torch.device``).
        dtype: the floating dtype of ``X``.
        standardize: if True, scale every pixel to zero mean and unit variance over the data set
            (constant pixels, which are always 0 here, stay 0); if False, scale the raw
            intensities 0..16 to 0..1. Standardized inputs make the loss surface rounder, so one
            learning rate suits all weights.

    Returns:
        A :class:`Dataset` with ``X`` of shape ``(1797, 64)``, ``y`` of shape ``(1797,)`` and
        ``n_classes = 10``. The order is scikit-learn's (fixed), so results are reproducible.
    """
    device = _check_device(device)
    dtype = _check_dtype(dtype)
    standardize = _check_bool("standardize", standardize)
    from sklearn.datasets import load_digits as _sk_load_digits  # import late: sklearn is slow

    bunch = _sk_load_digits()
    X = torch.as_tensor(bunch.data, dtype=torch.float64)
    if standardize:
        mean = X.mean(dim=0)
        std = X.std(dim=0)
        X = (X - mean) / torch.where(std > 0, std, torch.ones_like(std))
    else:
        X = X / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return Dataset(X.to(device=device, dtype=dtype), y.to(device), n_classes=10, name="digits")


# ---------------------------------------------------------------------------------------------
# Generated data sets (fast mode): no download, seeded, seconds to make.
# ---------------------------------------------------------------------------------------------

def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not accepted: expected an int >= {minimum}")
    return value


def load_mnist1d(num_samples: int = 5000, seed: int = 42, split: str = "train", device="cpu",
                 dtype=torch.float32) -> Dataset:
    """MNIST-1D (Greydanus & Kalaitzis): 40-point 1-D "digits", 10 classes, generated locally.

    Uses ``mnist1d.data.make_dataset`` with the package's default arguments except
    ``num_samples`` and ``seed`` (never ``get_dataset``, which downloads a pickle with no
    timeout). 80 % of the samples form the training split, 20 % the test split; the signals
    are already standardised by the generator. The package uses a SciPy namespace that warns
    about its deprecation; the warning is filtered here, where it is raised.
    """
    num_samples = _check_positive_int("num_samples", num_samples, minimum=10)
    seed = _check_positive_int("seed", seed, minimum=0)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not accepted: expected 'train' or 'test'")
    device, dtype = _check_device(device), _check_dtype(dtype)
    raw = _mnist1d_raw(num_samples, seed)
    X, y = (raw["x"], raw["y"]) if split == "train" else (raw["x_test"], raw["y_test"])
    # torch.tensor copies: the cached arrays are never shared with a caller
    return Dataset(torch.tensor(X, dtype=dtype, device=device),
                   torch.tensor(y, dtype=torch.long, device=device), n_classes=10,
                   name="mnist1d")


@functools.lru_cache(maxsize=4)
def _mnist1d_raw(num_samples: int, seed: int) -> dict:
    """The generator's output, made once per process and size (about 2 s for 5000 signals):
    the train and test splits, and every chapter cell that asks again, share it."""
    import warnings

    with warnings.catch_warnings():
        # mnist1d calls scipy.ndimage.filters.gaussian_filter (deprecated namespace).
        warnings.simplefilter("ignore", DeprecationWarning)
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = num_samples, seed
        return make_dataset(args)


def make_sparse_bow(n_docs: int = 4000, vocab: int = 10_000, doc_length: float = 150.0,
                    zipf: float = 1.1, informative: int = 500, skip_top: int = 100,
                    label_noise: float = 1.0, seed: int = 0, device="cpu",
                    dtype=torch.float32) -> Dataset:
    """A synthetic stand-in for IMDB bag-of-words: sparse binary features, a hidden linear rule.

    Word ``k`` (rank ``k + 1``) has probability proportional to ``(k + 1) ** -zipf``; each
    document draws ``Poisson(doc_length)`` words and its feature ``x_k`` is 1 if word ``k``
    occurs (binary bag of words, about 1 % of entries non-zero with the defaults). The label
    is ``1[w . x + noise > median]`` for a hidden weight vector ``w`` that is non-zero (+-1)
    on ``informative`` words of rank above ``skip_top`` (the frequent words carry no
    sentiment, as stop words do), with Gaussian noise of standard deviation ``label_noise``;
    the median threshold balances the classes. Many informative words are rare, so their
    gradients are sparse: the regime where per-coordinate step sizes (Adagrad, Adam) help.
    """
    for name, value, low in (("n_docs", n_docs, 2), ("vocab", vocab, 2),
                             ("informative", informative, 1), ("skip_top", skip_top, 0),
                             ("seed", seed, 0)):
        _check_positive_int(name, value, low)
    if skip_top + informative > vocab:
        raise ValueError(f"informative={informative!r} is not accepted: skip_top + informative "
                         f"must be <= vocab = {vocab}")
    for name, value in (("doc_length", doc_length), ("zipf", zipf)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}={value!r} is not accepted: expected a number > 0")
    device, dtype = _check_device(device), _check_dtype(dtype)
    g = torch.Generator().manual_seed(seed)
    p = torch.arange(1, vocab + 1, dtype=torch.float64) ** -float(zipf)
    lengths = torch.poisson(torch.full((n_docs,), float(doc_length), dtype=torch.float64),
                            generator=g).long().clamp(min=1)
    words = torch.multinomial(p / p.sum(), int(lengths.sum()), replacement=True, generator=g)
    rows = torch.repeat_interleave(torch.arange(n_docs), lengths)
    X = torch.zeros(n_docs, vocab, dtype=dtype)
    X[rows, words] = 1.0
    chosen = skip_top + torch.randperm(vocab - skip_top, generator=g)[:informative]
    w = torch.zeros(vocab, dtype=torch.float64)
    w[chosen] = torch.where(torch.rand(informative, generator=g) < 0.5, -1.0, 1.0).double()
    score = X.double() @ w + float(label_noise) * torch.randn(n_docs, generator=g, dtype=torch.float64)
    y = (score > score.median()).long()
    return Dataset(X.to(device), y.to(device), n_classes=2, name="sparse-bow")


# ---------------------------------------------------------------------------------------------
# The paper's real data sets (full mode): download once, verify, cache, parse.
# ---------------------------------------------------------------------------------------------

#: Where the real data sets are cached (override with the ``root`` argument or $ADAMLIB_DATA).
DEFAULT_ROOT = "~/.cache/adamlib/data"

#: data set -> file -> (url, md5). The checksums are those the original files are known by
#: (the same as torchvision's and torchtext's); tests swap in the checksums of small files.
#: MNIST comes from PyTorch's mirror of LeCun's files (the original site refuses scripted
#: downloads); CIFAR-10 and IMDB from their authors' sites.
SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                                       "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": ("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
                                       "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
                                      "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
                                      "ec29112dd5afa0611ce80d1b7f02629c"),
    },
    "cifar10": {
        "cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                                   "c58f30108f718f92721af3b95e74349a"),
    },
    "imdb": {
        "aclImdb_v1.tar.gz": ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                              "7c2ac02c03563afcf9b574c7e56c153a"),
    },
}


class DataUnavailableError(RuntimeError):
    """A real data set's file is missing and cannot be downloaded, or is corrupt."""


#: Set to ``0`` to use local copies whose MD5 checksum differs from the original's (a
#: re-compressed archive, a mirror's copy); each such file then gives a warning instead of an
#: error. The command line's ``--no-verify`` sets it. Results computed that way are cached
#: apart from verified ones.
VERIFY_VARIABLE = "ADAMLIB_DATA_VERIFY"


def verification_enabled() -> bool:
    """False when ``$ADAMLIB_DATA_VERIFY`` is ``0``; True when it is ``1`` or unset."""
    import os

    value = os.environ.get(VERIFY_VARIABLE, "1").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{VERIFY_VARIABLE}={value!r} is not accepted: expected 0 (use files whose "
                         f"MD5 differs, with a warning) or 1 (verify them, the default)")
    return value != "0"


def _root(root) -> "pathlib.Path":
    import os
    import pathlib

    return pathlib.Path(root or os.environ.get("ADAMLIB_DATA", DEFAULT_ROOT)).expanduser()


def _md5(path) -> str:
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target) -> None:
    """Fetch ``url`` to ``target`` atomically (a partial download never looks complete)."""
    import urllib.request

    from ._atomic import atomic_file

    with atomic_file(target, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)


def fetch_all(dataset: str, filenames, root=None, download: bool = True) -> list:
    """The paths of verified files of a real data set, downloading the missing ones if needed.

    Every problem is reported at once, in one :class:`DataUnavailableError`: all the files
    that are missing and could not be downloaded (each with its URL, and the folder to put
    them in), or all the files whose MD5 checksum differs from the original's. After the first
    failed download the others are not tried (offline, each would wait for its timeout).
    With ``$ADAMLIB_DATA_VERIFY=0`` a differing checksum warns instead (see
    :data:`VERIFY_VARIABLE`).
    """
    filenames = list(filenames)
    for filename in filenames:
        if dataset not in SOURCES or filename not in SOURCES[dataset]:
            raise ValueError(f"dataset={dataset!r}, filename={filename!r} is not accepted: expected "
                             f"one of {sorted((d, f) for d in SOURCES for f in SOURCES[d])}")
    verify = verification_enabled()
    folder = _root(root) / dataset
    paths = [folder / filename for filename in filenames]
    missing = [(f, p) for f, p in zip(filenames, paths) if not p.exists()]
    failure = "download=False" if not download else None
    still_missing = []
    for filename, path in missing:
        url = SOURCES[dataset][filename][0]
        if failure is None:
            try:
                _download(url, path)
                continue
            except OSError as error:  # URLError, timeouts and DNS failures are OSErrors
                failure = f"{error.__class__.__name__}: {error}"
        still_missing.append(url)
    if still_missing:
        many = len(still_missing) > 1
        them = "them" if many else "it"
        raise DataUnavailableError(
            f"{dataset}: {len(still_missing)} file{'s are' if many else ' is'} missing from {folder} "
            f"and could not be downloaded ({failure}); download {them} (elsewhere, if this machine "
            f"has no network) and put {them} in {folder}:\n"
            + "\n".join(f"  {url}" for url in still_missing)
            + f"\n(the data folder is $ADAMLIB_DATA, or the command line's --data-dir: now {folder.parent})")
    differing = []
    for filename, path in zip(filenames, paths):
        url, md5 = SOURCES[dataset][filename]
        actual = _md5(path)
        if actual != md5:
            differing.append((f"{dataset}: file {path} has MD5 {actual}, expected {md5}", url))
    if differing and verify:
        raise DataUnavailableError("\n".join(
            f"{what}: it is truncated or not the original; delete it and download {url} again, "
            f"or, to use it anyway, set {VERIFY_VARIABLE}=0 (the command line's --no-verify)"
            for what, url in differing))
    if differing:
        import warnings

        for what, _ in differing:
            warnings.warn(f"{what}; used anyway ({VERIFY_VARIABLE}=0)", stacklevel=2)
    return paths


def fetch(dataset: str, filename: str, root=None, download: bool = True):
    """The path of one verified file of a real data set (see :func:`fetch_all`)."""
    return fetch_all(dataset, [filename], root, download)[0]


def _read_idx(path) -> torch.Tensor:
    """An IDX file (LeCun's MNIST format), gzipped or not, as a uint8 tensor of its shape."""
    import gzip

    import numpy as np

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataUnavailableError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataUnavailableError(f"{path}: header says shape {shape}, file holds {body.size} values")
    return torch.from_numpy(body.reshape(shape).copy())


def load_mnist(split: str = "train", root=None, download: bool = True, device="cpu",
               dtype=torch.float32, flatten: bool = True) -> Dataset:
    """MNIST {cite}`lecun1998gradient`: 60 000 training / 10 000 test images of 28x28 pixels.

    Pixels are scaled to [0, 1] (the paper states no other preprocessing); ``flatten`` gives
    ``X`` of shape ``(m, 784)``, otherwise ``(m, 1, 28, 28)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not accepted: expected 'train' or 'test'")
    device, dtype = _check_device(device), _check_dtype(dtype)
    prefix = "train" if split == "train" else "t10k"
    image_path, label_path = fetch_all(
        "mnist", [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"], root, download)
    images, labels = _read_idx(image_path), _read_idx(label_path)
    if len(images) != len(labels):
        raise DataUnavailableError(f"mnist: {len(images)} images but {len(labels)} labels")
    X = images.to(dtype) / 255.0
    X = X.reshape(len(X), -1) if flatten else X.unsqueeze(1)
    return Dataset(X.to(device), labels.long().to(device), n_classes=10, name="mnist")


def load_cifar10(split: str = "train", root=None, download: bool = True, device="cpu",
                 dtype=torch.float32, whiten: bool = False) -> Dataset:
    """CIFAR-10 {cite}`krizhevsky2009learning` from the "python version" archive.

    ``X`` has shape ``(m, 3, 32, 32)`` with values in [0, 1]; ``whiten=True`` applies ZCA
    whitening fitted on the training images (the paper's "pre-processed by whitening").
    """
    import pickle
    import tarfile

    import numpy as np

    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not accepted: expected 'train' or 'test'")
    device, dtype = _check_device(device), _check_dtype(dtype)
    _check_bool("whiten", whiten)
    archive = fetch("cifar10", "cifar-10-python.tar.gz", root, download)
    wanted = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

    def read(names):
        batches = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if base in names:
                    batches[base] = pickle.load(tar.extractfile(member), encoding="bytes")
        missing = [n for n in names if n not in batches]
        if missing:
            raise DataUnavailableError(f"cifar10: {archive} lacks {missing}")
        data = np.concatenate([batches[n][b"data"] for n in names])
        labels = np.concatenate([np.asarray(batches[n][b"labels"]) for n in names])
        return torch.from_numpy(data).reshape(-1, 3, 32, 32).double() / 255.0, torch.from_numpy(labels).long()

    X, y = read(wanted[split])
    if whiten:
        X_fit = X if split == "train" else read(wanted["train"])[0]
        X = zca_whiten(X_fit, X)
    return Dataset(X.to(device=device, dtype=dtype), y.to(device), n_classes=10, name="cifar10")


def zca_whiten(X_fit: torch.Tensor, X: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """ZCA whitening: ``(X - mu) U diag(1/sqrt(s + eps)) U^T`` with ``mu, U, s`` from ``X_fit``."""
    flat_fit = X_fit.reshape(len(X_fit), -1).double()
    mean = flat_fit.mean(dim=0)
    centred = flat_fit - mean
    Xc = X.reshape(len(X), -1).double() - mean
    m, d = centred.shape
    if m >= d:
        s, U = torch.linalg.eigh(centred.T @ centred / m)
        W = U @ torch.diag(1.0 / torch.sqrt(s.clamp(min=0) + eps)) @ U.T
        return (Xc @ W).reshape(X.shape)
    # fewer images than pixels: the covariance has rank < m, so work in the span of the data
    # (an SVD of the m x d matrix) and scale the orthogonal complement by 1/sqrt(eps) (its
    # eigenvalues are 0): the same W without forming a d x d matrix
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    V = Vh.T
    inside = Xc @ V
    scaled = (inside / torch.sqrt(S**2 / m + eps)) @ V.T
    return (scaled + (Xc - inside @ V.T) / eps**0.5).reshape(X.shape)


def _imdb_tokens(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z0-9']+", text.lower().replace("<br />", " "))


def load_imdb(split: str = "train", num_words: int = 10_000, root=None, download: bool = True,
              device="cpu", dtype=torch.float32) -> Dataset:
    """IMDB movie reviews {cite}`maas2011learning` as binary bag-of-words vectors.

    Reads ``aclImdb/{train,test}/{pos,neg}/*.txt`` from the original archive; the vocabulary
    is the ``num_words`` most frequent words of the training reviews (ties broken
    alphabetically), as in the paper's "10,000 most frequent words". ``x_k = 1`` if word ``k``
    occurs in the review. Labels: 1 positive, 0 negative.
    """
    import collections
    import tarfile

    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not accepted: expected 'train' or 'test'")
    _check_positive_int("num_words", num_words)
    device, dtype = _check_device(device), _check_dtype(dtype)
    archive = fetch("imdb", "aclImdb_v1.tar.gz", root, download)
    docs = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if (member.isfile() and len(parts) == 4 and parts[0] == "aclImdb"
                    and parts[1] in docs and parts[2] in ("pos", "neg") and parts[3].endswith(".txt")):
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                docs[parts[1]].append((parts[3], int(parts[2] == "pos"), set(_imdb_tokens(text))))
    if not docs["train"]:
        raise DataUnavailableError(f"imdb: {archive} holds no aclImdb/train/{{pos,neg}}/*.txt reviews")
    counts = collections.Counter(w for _, _, words in docs["train"] for w in words)
    vocab = sorted(counts, key=lambda w: (-counts[w], w))[:num_words]
    index = {w: i for i, w in enumerate(vocab)}
    chosen = sorted(docs[split], key=lambda d: (d[1], d[0]))  # a fixed order: reproducible
    X = torch.zeros(len(chosen), num_words, dtype=dtype)
    for row, (_, _, words) in enumerate(chosen):
        cols = [index[w] for w in words if w in index]
        if cols:
            X[row, cols] = 1.0
    y = torch.tensor([label for _, label, _ in chosen], dtype=torch.long)
    return Dataset(X.to(device), y.to(device), n_classes=2, name="imdb")


def binarize(data: Dataset, threshold: float = 0.5) -> Dataset:
    """Pixels in [0, 1] to {0, 1} (``x > threshold``): the Bernoulli targets of a VAE."""
    return Dataset((data.X > threshold).to(data.X.dtype), data.y, data.n_classes, data.name + "-binary")
