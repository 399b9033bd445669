"""Atomic file writes: a reader (or a crash) never sees half a file.

Public API
----------
- ``atomic_write(path, mode="wb")``: context manager yielding an open temporary file in the
  same folder; on success it is flushed, fsynced, given normal permissions (0666 & ~umask)
  and renamed over ``path``; on any error or interrupt the temporary file is removed and
  ``path`` is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    target = Path(path)
    directory = target.resolve().parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=target.suffix + ".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
