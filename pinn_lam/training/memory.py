r"""How much memory a run needs, how much is free, and a one-line refusal when it cannot fit.

The largest allocation of a run is one evaluation of the loss and its gradient: every hidden
layer keeps, for every training point, its activations and their derivative streams for the
backward pass. So the peak grows as

.. math::
    \text{bytes} \approx k \cdot N \cdot w \cdot D \cdot s,

with :math:`N` the training points (collocation plus boundary), :math:`w` the width,
:math:`D` the depth, :math:`s` the bytes of the dtype (8 for float64, 4 for float32) and
:math:`k` the bytes per neuron, point and dtype byte. Measured with ``ru_maxrss`` around one
``loss().backward()`` at 80,000 points (PyTorch 2.13 CPU; Burgers 32 x 5 float32, heat and
Poisson 32 x 4 float64): :math:`k` = 6.0-8.0 on the fast path with the fused CPU kernels,
9.0-11.0 on the fast path without them (``PINN_LAM_KERNELS=0``) and 13.5-14.2 on the autograd
path (heat). :data:`BYTES_PER_UNIT` rounds the largest of each path up by a quarter, so the
estimate errs on the high side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: :math:`k` of the module docstring, by derivative path (measured maxima plus 25 %)
BYTES_PER_UNIT = {"fast": 14.0, "autograd": 18.0}
#: boundary and initial terms assumed per problem when counting training points
CONDITION_TERMS = 4


def estimate_bytes(config: dict[str, Any]) -> int:
    """The peak memory of a run with the resolved ``config`` (see the module docstring)."""
    points = config["n_collocation"] + CONDITION_TERMS * config["n_boundary"]
    itemsize = 4 if config["dtype"] == "float32" else 8
    path = "autograd" if config.get("fast") is False else "fast"
    return int(BYTES_PER_UNIT[path] * points * config["width"] * config["depth"] * itemsize)


def free_bytes(device: str) -> int | None:
    """Memory a run may still take on ``device`` (``None`` when it cannot be told).

    CPU: ``MemAvailable`` of ``/proc/meminfo``, lowered to what a cgroup (v2 ``memory.max``
    minus ``memory.current``) still allows. CUDA: the driver's free memory on the device."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max" and available is not None:
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def _gb(count: float) -> str:
    return f"{count / 2 ** 30:.1f} GiB"


def check_fits(config: dict[str, Any], free: int | None = None) -> None:
    """Raise ``MemoryError`` of one line when the run of ``config`` needs more memory than is
    free on its device (``free``: measured by :func:`free_bytes` when ``None``)."""
    free = free_bytes(config["device"]) if free is None else free
    need = estimate_bytes(config)
    if free is None or need <= free:
        return
    fits = max(1, int(config["n_collocation"] * free / need))
    raise MemoryError(
        f"this run needs about {_gb(need)} on {config['device']} ({config['n_collocation']:,} collocation points, "
        f"width {config['width']}, depth {config['depth']}, {config['dtype']}) but {_gb(free)} is free; lower "
        f"n_collocation (--points, about {fits:,} fit), width or depth, or use float32")


def is_allocation_failure(error: BaseException) -> bool:
    """Whether ``error`` is an allocator's out-of-memory failure (CPU or CUDA)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(marker in text for marker in (
        "DefaultCPUAllocator: can't allocate memory", "CUDA out of memory", "out of memory", "not enough memory"))


def allocation_failure_message(error: BaseException) -> str:
    """A one-line description of an allocation failure, with what to lower."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if first.startswith("this run needs about"):
        return first
    return (f"out of memory during the run ({first[:160]}); lower n_collocation (--points), width or depth, "
            "or use float32")

