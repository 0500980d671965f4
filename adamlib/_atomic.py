"""Write a file so that no reader ever sees it half-written."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new file beside ``target``, opened for writing, with the mode ``open()`` would give it.

    ``tempfile.mkstemp`` creates its files with mode 0600, and ``os.replace`` keeps the mode, so
    every result, CSV, figure and download came out readable by its owner only. ``os.open``
    with 0666 lets the kernel apply the umask, as for any other new file (0644 with the usual
    umask 022), without changing the process's umask (which other threads share).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / f"{target.name}.{secrets.token_hex(4)}.part"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_file(target, mode: str = "wb"):
    """Open a temporary file beside ``target``; on success it replaces ``target`` in one
    ``os.replace``; on any error it is removed and ``target`` is left as it was. The file gets
    the mode a plain ``open(target, "w")`` would give a new file (the umask applies)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
