r"""Data-parallel training of one problem over several processes with :mod:`torch.distributed`.

Every rank builds the same network from the one seed and draws the same global points from the
same :class:`~pinn_lam.training.sampling.PointSampler`; rank :math:`r` of :math:`R` keeps the
:math:`r`-th of :math:`R` contiguous blocks of every point set (:func:`block`), so a run over
:math:`R` processes trains on exactly the points of a one-process run. With :math:`N_k` points of
term :math:`k` in all, :math:`n_{k,r}` of them on rank :math:`r` and :math:`m_{k,r}` their mean
square residual, rank :math:`r`'s share of the loss is

.. math::
    L_r = \sum_k w_k \frac{n_{k,r}}{N_k}\, m_{k,r}, \qquad
    \sum_r L_r = \sum_k w_k \frac{1}{N_k}\sum_{j} \|c_k(x^k_j)\|^2 = L ,

the count-weighted mean of the ranks' losses, equal to the one-process loss. :class:`ShardedLoss`
all-reduces the value of :math:`L_r` (and of each term) in the forward pass and keeps the
gradient path of :math:`L_r` alone; after the backward pass the trainer calls
:meth:`DataParallel.all_reduce_gradients`, which sums the flat gradient over the ranks, so every
rank holds :math:`\nabla L = \sum_r \nabla L_r`. With equal loss values and gradients on every
rank, every optimizer (first-order steps, L-BFGS's closure and line search) takes the same step
everywhere, and every decision of the loop (a failed line search, a divergence, a redraw) is the
same on every rank. The few inputs that differ between processes (each one's clock, a signal, a
callback's answer) are made common by :meth:`DataParallel.agree`.

Residual-based redraws (RAD) and the residual measure of a run without a reference evaluate the
residual at given points through :meth:`ShardedLoss.pde_residual`: each rank computes a block and
the blocks are gathered, so every rank holds the same bits and draws the same points.

Rank 0 writes the checkpoints and the outputs; a resumed run reads the checkpoint on rank 0 and
broadcasts it. Least-squares phases (Levenberg–Marquardt) need the whole residual Jacobian and
are refused.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pinn_lam.optim import registry
from pinn_lam.training.loss import PINNLoss
from pinn_lam.training.mean_squares import weighted_mean_squares


def block(n: int, rank: int, world_size: int) -> slice:
    """Rows ``[start, stop)`` of rank ``rank`` when ``n`` rows are split into ``world_size``
    contiguous blocks whose sizes differ by at most one (the first ``n % world_size`` get one more)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    size, extra = divmod(int(n), world_size)
    start = rank * size + min(rank, extra)
    return slice(start, start + size + (rank < extra))


def check_phases(optimizers: Sequence[str]) -> None:
    """Refuse phases that cannot run data-parallel (least-squares ones), in one line."""
    refused = [name for name in optimizers if registry.get(name).residuals]
    if refused:
        raise ValueError(f"optimizer {', '.join(refused)} needs the whole residual Jacobian and cannot run over "
                         "several processes; use lam, adam, lbfgs or ssbfgs phases, or one process")


class DataParallel:
    """This process's place in a data-parallel run over the default process group.

    Args:
        device: the device this rank trains on (``cuda:LOCAL_RANK`` with NCCL, ``cpu`` with gloo).

    The process group must be initialised (:func:`from_environment` does it under ``torchrun``).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("DataParallel needs an initialised torch.distributed process group "
                             "(run under torchrun, or call torch.distributed.init_process_group first)")
        self.device = torch.device(device)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.backend = dist.get_backend()
        # the device the collectives run on: NCCL talks CUDA tensors, gloo CPU ones
        self._wire = self.device if self.backend == "nccl" else torch.device("cpu")

    @property
    def is_writer(self) -> bool:
        """Whether this rank writes the run's files (rank 0)."""
        return self.rank == 0

    def block(self, n: int) -> slice:
        """This rank's rows of ``n`` (see :func:`block`)."""
        return block(n, self.rank, self.world_size)

    def all_reduce(self, tensor: Tensor, op=dist.ReduceOp.SUM) -> Tensor:
        """``tensor`` reduced over the ranks (a new tensor on ``tensor``'s device)."""
        wire = tensor.detach().to(self._wire, copy=True)
        dist.all_reduce(wire, op=op)
        return wire.to(tensor.device)

    def all_reduce_gradients(self, model: nn.Module) -> None:
        r"""Replace every parameter's gradient by its sum over the ranks, :math:`\sum_r \nabla L_r`,
        in one all-reduce of the flat gradient (a missing gradient counts as zero)."""
        parameters = list(model.parameters())
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])
        total = self.all_reduce(flat)
        for p, g in zip(parameters, total.split([p.numel() for p in parameters])):
            if p.grad is None:
                p.grad = g.view_as(p).clone()
            else:
                p.grad.copy_(g.view_as(p))

    def agree(self, elapsed: float, stop: bool, signal: int | None) -> tuple[float, bool, int | None]:
        """The loop's per-process inputs made common: the slowest rank's clock, a stop if any
        rank's callback asked for one, and the largest signal number any rank received."""
        values = torch.tensor([float(elapsed), float(bool(stop)), float(signal or 0)], dtype=torch.float64)
        elapsed, stop, signal = self.all_reduce(values, op=dist.ReduceOp.MAX).tolist()
        return elapsed, bool(stop), int(signal) or None

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (pickled; for a checkpoint read by rank 0)."""
        holder = [value if self.is_writer else None]
        dist.broadcast_object_list(holder, src=0, device=self._wire if self.backend == "nccl" else None)
        return holder[0]

    def barrier(self) -> None:
        """Wait until every rank has come here."""
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def gather_rows(self, local: Tensor, counts: Sequence[int]) -> Tensor:
        """The rows of every rank's ``local`` (rank :math:`r` holding ``counts[r]`` rows), in rank
        order, on every rank. Values only: the result carries no gradient."""
        width = max(counts)
        padded = local.detach().new_zeros((width, *local.shape[1:]))
        padded[:len(local)] = local.detach()
        padded = padded.to(self._wire)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:count] for part, count in zip(parts, counts)]).to(local.device)


class _GlobalValue(torch.autograd.Function):
    """The all-reduced value of a loss whose gradient is that of this rank's share alone: the
    gradients are summed over the ranks after the backward pass, not through this node."""

    @staticmethod
    def forward(ctx, share: Tensor, value: Tensor) -> Tensor:  # type: ignore[override]
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


class ShardedLoss:
    """A :class:`~pinn_lam.training.loss.PINNLoss` over the points of every rank, evaluated on
    this rank's block of each point set (see the module docstring).

    :attr:`points` and :meth:`set_points` hold the global points (as the trainer, its
    checkpoints and the sampler see them); :attr:`local` is the PINNLoss over this rank's block.
    Every method that returns values is collective: every rank must call it, in the same order.

    Args:
        loss: the PINNLoss of the run, holding the global points.
        data_parallel: this process's :class:`DataParallel`.
    """

    def __init__(self, loss: PINNLoss, data_parallel: DataParallel) -> None:
        self.local, self.data_parallel = loss, data_parallel
        self.model, self.problem = loss.model, loss.problem
        self.set_points(loss.points)

    @property
    def fast(self) -> bool:
        return self.local.fast

    @property
    def paths(self) -> dict[str, str]:
        return self.local.paths

    @property
    def weights(self) -> dict[str, float]:
        return self.local.weights

    def terms(self) -> tuple[str, ...]:
        return self.local.terms()

    def point_sets(self) -> tuple[str, ...]:
        return self.local.point_sets()

    def set_points(self, points: Mapping[str, Tensor]) -> None:
        """Keep the global ``points`` and give this rank's block of each set to :attr:`local`."""
        world = self.data_parallel.world_size
        small = {name: len(value) for name, value in points.items() if len(value) < world}
        if small:
            raise ValueError(f"every point set needs at least one point per process ({world}); "
                             + ", ".join(f"{name} has {n}" for name, n in small.items()))
        self.points = {name: value.detach() for name, value in points.items()}
        block_of = self.data_parallel.block
        self.local.set_points({name: value[block_of(len(value))] for name, value in self.points.items()})
        # n_{k,r} / N_k: this rank's share of each term's mean
        self._shares = {name: len(self.local.points[name]) / len(self.points[name]) for name in self.points}

    def __call__(self) -> tuple[Tensor, dict[str, Tensor]]:
        return self.loss()

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        r"""The global total :math:`L` (its gradient path that of this rank's :math:`L_r`) and each
        term's global mean square (values, without gradient). One all-reduce."""
        names = self.local.terms()
        residuals = self.local.residuals()
        shares = [self._shares["pde" if name in self.local.spec.equations else name] for name in names]
        share, means = weighted_mean_squares([residuals[name] for name in names],
                                             [self.local.weights[name] * s for name, s in zip(names, shares)], names)
        parts = torch.stack([share.detach()] + [means[name].detach() * s for name, s in zip(names, shares)])
        reduced = self.data_parallel.all_reduce(parts)
        return _GlobalValue.apply(share, reduced[0]), dict(zip(names, reduced[1:]))

    def pde_residual(self, points: Tensor | None = None) -> Tensor:
        """The pointwise residuals ``(N, e)`` at ``points`` (default: the global collocation
        points), each rank computing a block; values only."""
        if points is None:
            points = self.points["pde"]
        dp = self.data_parallel
        if len(points) < dp.world_size:  # too few to split: every rank computes them all
            return self.local.pde_residual(points).detach()
        counts = [len(range(len(points))[block(len(points), r, dp.world_size)]) for r in range(dp.world_size)]
        return dp.gather_rows(self.local.pde_residual(points[dp.block(len(points))]), counts)


#: whether :func:`from_environment` started a process group in this process
_STARTED_GROUP = False


def _exit_now(code: int) -> None:
    """Flush the standard streams and end the process without the interpreter's teardown.

    A Gloo worker thread can still be destroying the work of the last collective (its tensors'
    Python objects need the GIL) when the interpreter finalizes; the thread is then stopped
    inside C++ code and the process aborts ("terminate called without an active exception",
    SIGABRT) after its work is done. Seen with spawned ranks on a loaded machine (a core dump:
    ``ProcessGroupGloo::runLoop`` -> ``~AsyncAllreduceWork`` -> ``take_gil`` ->
    ``PyThread_exit_thread`` during ``Py_FinalizeEx``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_and_exit(rank: int, function: Callable[..., Any], *args: Any) -> None:
    """``function(rank, *args)`` (``torch.multiprocessing.spawn(run_and_exit, args=(function,
    ...))`` passes the rank first), then the end of the process spawn started, without the
    interpreter's teardown (:func:`_exit_now`). An exception still propagates, so spawn reports it."""
    function(rank, *args)
    _exit_now(0)


def exit_if_data_parallel(code: int) -> int:
    """``code``, or, in a process where :func:`from_environment` ran a process group (a rank
    under ``torchrun``), the end of the process with ``code`` (:func:`_exit_now`): the command's
    outputs are written and the group destroyed by then."""
    if _STARTED_GROUP:
        _exit_now(code)
    return code


def writer_first(data_parallel: DataParallel | None, function: Callable[..., Any], *args, **kwargs) -> Any:
    """``function(*args, **kwargs)`` on rank 0, then on the other ranks: what rank 0 caches on
    disk (a reference, compiled kernels) the others then read instead of computing. Without
    ``data_parallel``, just the call."""
    if data_parallel is None:
        return function(*args, **kwargs)
    if data_parallel.is_writer:
        value = function(*args, **kwargs)
    data_parallel.barrier()
    if not data_parallel.is_writer:
        value = function(*args, **kwargs)
    return value


def _environment_world_size() -> int:
    """The world size ``torchrun`` sets (1 outside it)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 1
    return int(os.environ["WORLD_SIZE"])


@contextlib.contextmanager
def from_environment(device: str | None = None, timeout: float = 1800.0) -> Iterator[DataParallel | None]:
    """Under ``torchrun`` with more than one process: initialise the default process group from
    the environment (``env://``), NCCL on CUDA with one GPU per rank (``cuda:LOCAL_RANK``), gloo
    on the CPU, yield this rank's :class:`DataParallel` and destroy the group on exit. Outside
    ``torchrun`` (or with one process) yield ``None``.

    Args:
        device: ``"cpu"``, ``"cuda"`` (or ``None``: CUDA when present); a ``cuda:N`` index is
            replaced by the rank's ``LOCAL_RANK``.
        timeout: seconds a collective waits for the other ranks before failing.
    """
    if _environment_world_size() <= 1:
        yield None
        return
    from pinn_lam.training.setup import _device, default_device

    device = _device(device or default_device())
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                             "start at most one process per GPU (torchrun --nproc-per-node)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"data-parallel training runs on cpu or cuda, got device {device}")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(seconds=timeout))
    global _STARTED_GROUP
    _STARTED_GROUP = True
    try:
        yield DataParallel(device)
    finally:
        dist.destroy_process_group()
