"""Atomic file writes: a reader (or a run killed half-way) never sees half a file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path`` (creating the folder), flush it to
    disk, then move it over ``path`` with :func:`os.replace`; on any error, remove it and re-raise.

    A failure of the file system (a full disk, a read-only folder, ...) is re-raised as an
    ``OSError`` of one line, ``cannot write PATH: CAUSE``, with the original ``errno``; ``path``
    is left as it was."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise
    return path


def write_error(path: Path, error: OSError) -> OSError:
    """``OSError("cannot write PATH: CAUSE")`` keeping ``error``'s ``errno``."""
    cause = error.strerror or str(error) or type(error).__name__
    failure = OSError(f"cannot write {path}: {cause}")
    failure.errno = error.errno
    return failure
