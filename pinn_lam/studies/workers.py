"""Worker processes that never outlive their parent and never lose a finished result.

A comparison's worker runs one training after another for a parent that collects the results.
When the parent is killed (SIGKILL leaves it no chance to stop its pool), each worker notices and
exits, in two independent ways:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker when the
  thread that started it ends (:func:`die_with_parent`);
* everywhere, a daemon thread compares ``os.getppid()`` with the parent's pid every ``interval``
  seconds and ends the process when the parent is gone and the worker has been re-parented
  (:func:`watch_parent`).

A result is written to its file by the worker itself, atomically, as soon as the run ends
(:func:`run_and_keep`), so a result computed before the parent died is on disk for the next
start of the comparison to reuse.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``
PR_SET_PDEATHSIG = 1
#: the status a worker exits with when it finds its parent gone
ORPHAN_EXIT = 3


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; whether that was possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int | None = None, interval: float = 1.0) -> threading.Thread:
    """Start a daemon thread that ends this process (status :data:`ORPHAN_EXIT`) once its parent
    ``parent`` (default: the current parent) is no longer its parent."""
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if os.getppid() != parent:
                os._exit(ORPHAN_EXIT)  # no cleanup: the parent that would use it is gone

    thread = threading.Thread(target=watch, name="pinn-lam-parent-watch", daemon=True)
    thread.start()
    return thread


def guard_worker(parent: int, interval: float = 1.0) -> None:
    """Both protections of the module docstring, at the start of a worker process whose parent
    is ``parent`` (the pid the parent passes down: one that has already died is noticed too)."""
    die_with_parent()
    watch_parent(parent, interval=interval)


def run_and_keep(run: Callable[[Any], dict[str, Any]], spec: Any, path: Path,
                 write: Callable[[Path, Any], None]) -> dict[str, Any]:
    """``run(spec)``, then ``write(path, record)`` in this process before returning the record."""
    record = run(spec)
    write(path, record)
    return record
