"""Fake MNIST, CIFAR-10 and IMDB files in their real formats, for the tests and the tools.

The real data sets cannot be downloaded here; adamlib.data's loaders are tested on small files
written in the originals' formats (tests/test_data.py, tests/test_full_mode.py), and
tools/measure_memory.py writes full-size ones. One writer of each format serves all of them.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Iterable

CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def idx(array) -> bytes:
    """``array`` (integers 0-255) as an idx file of unsigned bytes, MNIST's format."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype("uint8").tobytes()


def cifar10_batches(rng, per_batch: int, labels: list[int] | None = None) -> dict[str, bytes]:
    """The members of CIFAR-10's "python version" archive: 5 training batches and the test
    batch, each ``per_batch`` random images and ``labels`` (default: random)."""
    import numpy as np

    return {f"cifar-10-batches-py/{name}": pickle.dumps(
        {b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
         b"labels": list(labels) if labels is not None else rng.integers(0, 10, size=per_batch).tolist()})
        for name in CIFAR10_BATCHES}


def write_tar_gz(path: Path, members: Iterable[tuple[str, bytes]] | dict[str, bytes],
                 compresslevel: int = 9) -> Path:
    """``path``: a .tar.gz of ``members`` (name, bytes), written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with tarfile.open(partial, mode="w:gz", compresslevel=compresslevel) as tar:
        for name, blob in (members.items() if isinstance(members, dict) else members):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    partial.replace(path)
    return path
