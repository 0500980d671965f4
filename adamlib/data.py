"""Data sets for the chapters and the paper's experiments.

Every loader returns a :class:`Dataset`: the whole data set as two tensors on the requested
device. The chapters' data sets are small enough to live in memory, so a training loop slices
mini-batches out of ``X`` and ``y`` directly (see :func:`adamlib.train.train`).

Loaders here need no network. The fast-mode data sets ship with a package (scikit-learn's
digits) or are generated locally; loaders of the paper's real data sets (MNIST, CIFAR-10,
IMDB) for full mode read files the user has downloaded and are added beside these.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Dataset", "load_digits"]

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
