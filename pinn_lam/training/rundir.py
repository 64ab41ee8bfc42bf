"""One run, one folder: the output folder of a run is claimed before anything is written to it.

Claiming a folder (:func:`claim`) means, in order:

1. create it (and any missing parents) and check that files can be written there;
2. take its lock, the file ``.pinn-lam.lock`` holding the owner's process id and host name. A
   lock whose process no longer runs on this host is stale and taken over; a live one refuses;
3. delete the temporary files that killed writes leave behind (``.checkpoint.pt.*.tmp`` and the
   like: the lock guarantees that no writer is using them);
4. unless resuming, refuse a folder that holds another run's files (:data:`RUN_FILES`), or delete
   them first when ``overwrite`` is set, so one folder never mixes files of two runs.

When the run fails, the folders that step 1 created and nothing filled are removed again; the lock
is released however the run ends.
"""
from __future__ import annotations

import contextlib
import functools
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from pinn_lam.errors import RunFolderError

#: the files a run writes into its folder
RUN_FILES = ("checkpoint.pt", "metrics.json", "history.csv", "solution.png", "solution.pdf")
#: the lock file's name inside the output folder
LOCK_NAME = ".pinn-lam.lock"


def _create(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        _remove_empty(missing)
        raise OSError(f"cannot write to output folder {folder}: {error.strerror or error}") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for path in folders:  # deepest first
        with contextlib.suppress(OSError):
            path.rmdir()  # fails, and is meant to, when something is inside


def lock_owner(path: Path) -> tuple[int, str] | None:
    """``(pid, host)`` written in the lock file at ``path``, or ``None`` if it is unreadable."""
    try:
        pid, host = path.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    """Whether the lock's owner may still run (a process on another host is assumed to)."""
    if host != socket.gethostname() or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def acquire_lock(folder: Path) -> Path:
    """Take ``folder``'s lock (see the module docstring) and return its path.

    The lock is written to a temporary file and then linked to its name, which fails when the
    name exists, so no process ever sees a lock without its owner."""
    path = folder / LOCK_NAME
    handle, temporary = tempfile.mkstemp(prefix=f"{LOCK_NAME}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(f"{os.getpid()} {socket.gethostname()}\n")
        for _ in range(3):
            try:
                os.link(temporary, path)
                return path
            except FileExistsError:
                owner = lock_owner(path)
                if owner is not None and _alive(*owner):
                    raise RunFolderError(
                        f"output folder {folder} is in use by process {owner[0]} on {owner[1]} (lock file {path}); "
                        "wait for it to finish, choose another output folder, or delete the lock file if that "
                        "process has ended") from None
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # stale: its owner is gone
        raise RunFolderError(f"cannot take the lock {path}: other processes keep taking it")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def release_lock(path: Path) -> None:
    """Remove the lock at ``path`` if this process owns it."""
    owner = lock_owner(path)
    if owner is not None and owner[0] == os.getpid() and owner[1] == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def stale_temporaries(folder: Path) -> list[Path]:
    """The temporary files that interrupted atomic writes of run files left in ``folder``."""
    prefixes = tuple(f".{name}." for name in (*RUN_FILES, LOCK_NAME))
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefixes) and p.name.endswith(".tmp"))


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds any of a run's files (:data:`RUN_FILES`)."""
    return any((folder / name).exists() for name in RUN_FILES)


def unused_folder(base: str | os.PathLike) -> Path:
    """``base`` if it holds no run, else the first of ``base-2``, ``base-3``, ... that holds none."""
    base = Path(base)
    candidate, number = base, 1
    while holds_run(candidate):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


@contextlib.contextmanager
def claim(folder: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Claim ``folder`` for one run for the duration of the ``with`` block (see the module docstring)."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in the folder, "
                         "overwrite replaces it")
    folder = Path(folder)
    created = _create(folder)
    lock = None
    try:
        lock = acquire_lock(folder)
        for path in stale_temporaries(folder):
            path.unlink(missing_ok=True)
        if not resume:
            existing = [name for name in RUN_FILES if (folder / name).exists()]
            if existing and not overwrite:
                raise RunFolderError(
                    f"output folder {folder} holds another run ({', '.join(existing)}); pass --resume "
                    "(resume=True) to continue it or --overwrite (overwrite=True) to replace it")
            for name in existing:
                (folder / name).unlink()
        yield folder
    except BaseException:
        if lock is not None:
            release_lock(lock)
            lock = None
        _remove_empty(created)
        raise
    finally:
        if lock is not None:
            release_lock(lock)


def claims_output_folder(solve: Callable) -> Callable:
    """Decorate ``solve`` so that its ``output_dir`` is claimed (with its ``resume`` and
    ``overwrite`` arguments) while it runs; of a data-parallel run, by its writing rank only."""

    @functools.wraps(solve)
    def claimed(*args, **kwargs):
        folder = kwargs.get("output_dir")
        if folder is None or not getattr(kwargs.get("data_parallel"), "is_writer", True):
            return solve(*args, **kwargs)
        with claim(folder, resume=bool(kwargs.get("resume")), overwrite=bool(kwargs.get("overwrite"))):
            return solve(*args, **kwargs)

    return claimed
