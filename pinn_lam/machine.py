"""What machine a measurement ran on: every benchmark, metrics file and results table quotes it."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` prints it, from ``/proc/cpuinfo``), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads(cores: int | None = None) -> int:
    """PyTorch CPU threads for a run that owns its process: one core fewer than it may use, at least 1.

    A training step of a small PINN is a few hundred short parallel regions, each ending at a
    barrier that waits for its slowest thread. With as many threads as cores, any other runnable
    process takes a core from one of them for a scheduler time slice, and every region waits
    that long: beside one busy process a step took 6-15 times as long with two threads on two
    cores, and at most 1.8 times with one (``pinn-lam bench busy``, ``docs/measurements/``).
    Leaving one core to the rest of the machine keeps a run's speed when it is not alone, at a
    small cost on an idle machine.
    """
    cores = usable_cores() if cores is None else int(cores)
    return max(1, cores - 1)


def use_default_threads() -> int:
    """Set torch's intra-op threads to :func:`default_threads` and return the number set."""
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    return threads


#: glibc ``mallopt`` parameters (``malloc.h``)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the largest mmap threshold glibc accepts on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024
_malloc_tuned: bool | None = None


def tune_malloc() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the OS at once.

    A training step allocates and frees the same few-hundred-kilobyte tensors every
    iteration. With glibc's defaults, allocations above its (adaptive) mmap threshold and the
    heap top above its trim threshold go back to the OS when freed, so the next step takes a
    page fault on every 4 KiB page it touches again (``pinn-lam bench train`` reports the
    faults per step, and ``PINN_LAM_MALLOC=default`` shows them without this). Raising both
    thresholds keeps that memory in the process (its peak usage, returned at exit). This is
    glibc's counterpart of the TCMalloc/jemalloc advice in PyTorch's CPU performance guide; it
    changes no result.

    Idempotent; returns True when the settings are in force. Set the environment variable
    ``PINN_LAM_MALLOC=default`` to leave malloc alone; does nothing off glibc (e.g. macOS, musl).
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    if os.environ.get("PINN_LAM_MALLOC", "").strip().lower() in ("default", "0", "off", "no", "false"):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _malloc_tuned
