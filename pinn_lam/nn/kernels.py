"""Fused CPU loops for the tanh Taylor pass, built once with the system's C++ compiler.

:class:`pinn_lam.nn.taylor._TaylorTanh` spends about half of a CPU step in element-wise tensor
operations, each a pass over a block of the size of the network's activations (and a
dispatch through PyTorch of a few microseconds). ``taylor_kernels.cpp`` does each layer's
element-wise work in one pass instead; the matrix products and ``tanh`` stay in PyTorch. It is
plain C++ without PyTorch headers, compiled on first use (``c++ -O3 -march=native``, a few
seconds) into the cache folder (:func:`pinn_lam.pde.cache.cache_folder`, under ``kernels/``, keyed
by the source, the compiler command, the CPU and the OpenMP runtime) and loaded with :mod:`ctypes`.

Threads: the loops are built with OpenMP and linked against the OpenMP runtime PyTorch itself has
loaded (:func:`openmp_runtime`), so they run on PyTorch's thread pool, with
``torch.get_num_threads()`` threads, and never start a second pool that would fight PyTorch's
for the cores. They split the points into fixed chunks and add the per-chunk sums in a fixed
order, so the results are the same bit for bit on any number of threads. Where PyTorch has no
OpenMP runtime, or the compiler has no OpenMP, they are built serial.

``torch.compile`` would fuse the same loops, but its kernel for a layer's backward rule was
barely faster than the eager operations here, far from these loops (its call overhead and a
loop not specialised to the slab counts; see ``docs/speed.md``).

The kernels are used for contiguous float32/float64 CPU tensors when they are available;
everything else (CUDA, other dtypes, no compiler) takes the eager path, which gives the same
numbers up to rounding (``tests/test_kernels.py``). Set ``PINN_LAM_KERNELS=0`` to turn them off;
``CXX`` names the compiler (default ``c++``). A failed build warns once and falls back.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["available", "enabled", "library", "use_for"]

#: environment variable that turns the kernels off (``0``, ``off``, ``no``, ``false``)
ENV_VAR = "PINN_LAM_KERNELS"
_SOURCE = Path(__file__).with_name("taylor_kernels.cpp")
_ABI_VERSION = 6
#: (n1, n2) pairs the kernels are compiled for (``PINN_LAM_DISPATCH`` in the source)
PAIRS = frozenset({(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2), (3, 3)})
_lock = threading.Lock()
_state: dict[str, object] = {}


def enabled() -> bool:
    """False when ``PINN_LAM_KERNELS`` turns the kernels off."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("0", "off", "no", "false")


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p)]


def openmp_runtime() -> str | None:
    """The OpenMP runtime PyTorch itself uses (a path), or ``None``.

    The kernels link this very library, so their parallel loops share PyTorch's thread pool:
    a second runtime would start a second pool that competes with PyTorch's for the cores.
    Other packages may have loaded OpenMP runtimes of their own (scikit-learn ships one), so
    this asks the dynamic linker where ``libtorch_cpu``'s ``omp_get_max_threads`` resolves.
    Linux only (``/proc/self/maps``, ``dladdr``); ``None`` elsewhere or without OpenMP.
    """
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
        torch_cpu = next(fields[-1] for fields in map(str.split, lines)
                         if len(fields) >= 6 and os.path.basename(fields[-1]).startswith("libtorch_cpu."))
        address = ctypes.cast(ctypes.CDLL(torch_cpu).omp_get_max_threads, ctypes.c_void_p).value
        info = _DlInfo()
        if not ctypes.CDLL(None).dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
            return None
        return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError, StopIteration, ValueError):
        return None


def _variants(runtime: str | None) -> list[tuple[list[str], list[str]]]:
    """(compile flags, link inputs) to try in order: OpenMP (with PyTorch's runtime, when there
    is one) before serial loops, ``-march=native`` before none (some compilers lack it)."""
    parallel = [(["-fopenmp"], [runtime])] if runtime else []
    return [(arch + omp, link) for omp, link in parallel + [([], [])] for arch in (["-march=native"], [])]


def _compile(output: Path, runtime: str | None) -> None:
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not compiler:
        raise RuntimeError("no C++ compiler found (set CXX)")
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        target, obj = Path(tmp) / output.name, Path(tmp) / "taylor.o"
        errors: list[str] = []
        for flags, link in _variants(runtime):
            # compile and link apart: `-fopenmp` when linking would add the compiler's own runtime
            steps = ([compiler, "-O3", "-std=c++17", "-fPIC", *flags, "-c", str(_SOURCE), "-o", str(obj)],
                     [compiler, "-shared", "-fPIC", str(obj), *link, "-o", str(target)])
            for command in steps:
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    errors = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
                    break
            else:
                os.replace(target, output)  # atomic: concurrent builds never load half a file
                return
        raise RuntimeError(f"{compiler} failed: {errors[0]}")


def _build() -> ctypes.CDLL:
    from pinn_lam.pde.cache import cache_folder

    source = _SOURCE.read_bytes()
    runtime = openmp_runtime()
    key = hashlib.sha256(source + _cpu_signature().encode() + os.environ.get("CXX", "").encode()
                         + str(runtime).encode()).hexdigest()[:16]
    folder = cache_folder() / "kernels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"taylor-{key}{'.dll' if os.name == 'nt' else '.so'}"
    if not path.exists():
        print("pinn-lam: building the fused CPU kernels (once per machine and source, a few seconds)",
              file=sys.stderr, flush=True)
        _compile(path, runtime)
    lib = ctypes.CDLL(str(path))
    if lib.pinn_lam_abi_version() != _ABI_VERSION:
        raise RuntimeError(f"{path} has ABI version {lib.pinn_lam_abi_version()}, expected {_ABI_VERSION}")
    i64, ptr, flag = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.pinn_lam_first_forward.argtypes = [flag, ptr, ptr, i64, ptr, ptr, i64, i64, i64, i64, i64, flag]
    lib.pinn_lam_hidden_forward.argtypes = [flag, ptr, ptr, i64, i64, i64, i64, i64, flag]
    lib.pinn_lam_rows_backward.argtypes = [flag, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr,
                                           i64, i64, i64, i64, i64, flag]
    lib.pinn_lam_first_affine.argtypes = [flag, ptr, ptr, ptr, ptr, i64, i64, i64, flag]
    lib.pinn_lam_openmp.argtypes = []
    for fn in (lib.pinn_lam_first_forward, lib.pinn_lam_hidden_forward, lib.pinn_lam_rows_backward,
               lib.pinn_lam_first_affine, lib.pinn_lam_openmp):
        fn.restype = ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernels (built on the first call), or ``None`` when they are turned off or
    could not be built (a warning says why, once)."""
    if not enabled():
        return None
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                try:
                    _state["lib"] = _build()
                except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as error:
                    _state["lib"] = None
                    warnings.warn(f"pinn-lam: fused CPU kernels unavailable ({error}); using the eager path "
                                  f"(set {ENV_VAR}=0 to silence)", RuntimeWarning, stacklevel=3)
    return _state["lib"]  # type: ignore[return-value]


def available() -> bool:
    """True when the kernels are turned on and built (building them if needed)."""
    return library() is not None


def use_for(tensor: Tensor, n1: int, n2: int) -> ctypes.CDLL | None:
    """The kernels when they can take ``tensor``'s device and dtype (CPU, float32/float64) and
    ``n1`` first and ``n2`` second derivative directions (:data:`PAIRS`), else ``None``."""
    if tensor.device.type != "cpu" or tensor.dtype not in (torch.float32, torch.float64) or (n1, n2) not in PAIRS:
        return None
    return library()


def _ptr(t: Tensor | None) -> int | None:
    if t is None:
        return None
    if not t.is_contiguous():
        raise ValueError("kernel arrays must be contiguous")
    return t.data_ptr()


def _check(status: int) -> None:
    if status:
        raise ValueError(f"the fused kernels are not compiled for these derivative counts; pairs: {sorted(PAIRS)}")


#: the int64 arrays of derivative columns handed to the kernels, one per tuple of columns
_COLS: dict[tuple[int, ...], ctypes.Array] = {}


def _cols(cols: tuple[int, ...]) -> ctypes.Array:
    array = _COLS.get(cols)
    if array is None:
        array = _COLS[cols] = (ctypes.c_int64 * len(cols))(*cols)
    return array


def first_forward(lib: ctypes.CDLL, block: Tensor, w0: Tensor, cols: tuple[int, ...], scale: Tensor, nv: int, n: int,
                  n1: int, n2: int) -> None:
    """The first layer's derivative slabs of ``block`` (whose value rows hold h), whose constant
    a'_i is ``scale[i] * w0[:, cols[i]]`` (``w0``: the first layer's (w, din) weight)."""
    _check(lib.pinn_lam_first_forward(block.dtype == torch.float64, _ptr(block), _ptr(w0), w0.shape[1], _cols(cols),
                                      _ptr(scale), nv, n, block.shape[1], n1, n2, torch.get_num_threads()))


def hidden_forward(lib: ctypes.CDLL, pre: Tensor, block: Tensor, nv: int, n: int, n1: int, n2: int) -> None:
    """A hidden layer's derivative slabs of ``block`` (whose value rows hold h) from the product ``pre``."""
    _check(lib.pinn_lam_hidden_forward(block.dtype == torch.float64, _ptr(pre), _ptr(block), nv, n,
                                       block.shape[1], n1, n2, torch.get_num_threads()))


def rows_backward(lib: ctypes.CDLL, up: Tensor, block: Tensor, bias: Tensor, nv: int, n: int, n1: int, n2: int, *,
                  g: Tensor | None = None, wout: Tensor | None = None, g_wout: Tensor | None = None,
                  g_bout: Tensor | None = None, z: Tensor | None = None, cols: tuple[int, ...] = (),
                  scale: Tensor | None = None, g_weight: Tensor | None = None) -> None:
    """:func:`pinn_lam.nn.taylor._tanh_rows_backward` in one pass (``up`` in place, or written from
    the outer product of ``g`` (rows, 1) and ``wout`` (1, w), when it also writes the output
    layer's weight and bias gradients ``g^T block`` to ``g_wout`` and ``g[:nv].sum()`` to
    ``g_bout``), writing the bias gradient to ``bias``. With ``z`` (the first layer's (nv, din)
    scaled points), ``cols`` and ``scale`` it writes the first layer's weight gradient (w, din)
    to ``g_weight``: ``up[:nv]^T z`` plus ``scale[i]`` times slab i's column sums in column
    ``cols[i]``. Every output is written, not added to."""
    if (g is None) != (g_wout is None) or (g is None) != (g_bout is None):
        raise ValueError("g, g_wout and g_bout go together")
    if (z is None) != (g_weight is None) or (z is not None and (scale is None or len(cols) != n1)):
        raise ValueError("z, cols, scale and g_weight go together")
    _check(lib.pinn_lam_rows_backward(up.dtype == torch.float64, _ptr(up), _ptr(block), _ptr(g), _ptr(wout),
                                      _ptr(g_wout), _ptr(g_bout), _ptr(bias), _ptr(z), z.shape[1] if z is not None else 0,
                                      _cols(cols) if z is not None else None, _ptr(scale), _ptr(g_weight), nv, n,
                                      up.shape[1], n1, n2, torch.get_num_threads()))


def first_affine(lib: ctypes.CDLL, out: Tensor, z: Tensor, w0: Tensor, b: Tensor) -> None:
    """The first layer's pre-activations ``z @ w0.T + b`` into ``out`` (nv, w), for a few inputs."""
    _check(lib.pinn_lam_first_affine(out.dtype == torch.float64, _ptr(out), _ptr(z), _ptr(w0), _ptr(b), z.shape[0],
                                     z.shape[1], out.shape[1], torch.get_num_threads()))
