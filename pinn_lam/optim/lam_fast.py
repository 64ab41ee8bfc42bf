r"""LAM's fast paths (``fused=True``, the CPU default): as few passes over memory as each mode allows.

**Element-wise mode**: torch's fused AdamW kernel with :math:`\beta_1 = 0` and the first moment
aliased to g. Why: an element-wise LAM step reads g, v, w and writes v, w (20 bytes per float32
parameter). Composed of separate tensor operations it makes several passes over memory, and the
``torch._foreach_*`` versions also allocate fresh intermediates every step, whose page faults
dominate on CPU. ``torch._fused_adamw_`` reads and writes each element once, and with

* ``beta1 = 0``: the first moment becomes :math:`m = g` exactly, because ``exp_avg`` *is* the
  gradient tensor, so the kernel's ``lerp(m, g, 1)`` reads two equal numbers and stores g back
  (``m + 1\cdot(g - m)`` and ``g - 0\cdot(g - m)`` both give g for a finite g);
* ``beta2 = beta``: :math:`v \leftarrow \beta v + (1-\beta) g^2`, LAM's average;
* step count :math:`+\infty` when there is no bias correction, so :math:`1 - \beta^t = 1` and
  :math:`1 - 0^t = 1` (the true step count otherwise, giving LAM's :math:`v/(1-\beta^t)`);
* ``maximize`` as a negative learning rate and weight decay (so :math:`1 - \eta\lambda` is
  unchanged), because the kernel's own ``maximize`` would store -g into ``exp_avg``, i.e. the grad;

the kernel computes :math:`w \leftarrow (1-\eta\lambda) w - \eta\, g / (\sqrt{v} + \epsilon)`, LAM's
update, in one pass (it also stores g over itself, so 24 bytes move per parameter rather than 20).
A gradient that is inf or nan is overwritten with nan (the step is nan either way).

Tensors the kernel cannot take (not contiguous, a gradient that requires grad, dtypes other
than float16/bfloat16/float32/float64) go through the ``fallback`` path (the foreach one). Every
other tensor is fused, small ones included, whatever the number of torch threads. With several
threads the CPU kernel opens a parallel region even for a small tensor, which costs a few
microseconds on idle cores; the foreach path it replaced costs more (``pinn-lam bench optimizer
--params 921 --tensors 8`` times both on the size of DeepXDE's Burgers network; docs/lam.md).
On cores that other jobs keep busy, every parallel region can wait for a scheduler time slice
(docs/lam.md); there, one torch thread is the cure, for this kernel as for every other parallel
operation of a PINN step.

**Layer-wise mode** (CPU tensors): the state is one number per tensor, so after one reduction pass
(:math:`\sum g^2` as ``torch.dot(g, g)``, which reads g once) the step size is a Python float and
the update is one ``w.add_(g, alpha=...)`` pass (read g and w, write w): 16 bytes per float32
parameter and no temporaries. It calls ``.item()``, a host sync on accelerators, so
tensors not on the CPU go through the ``fallback`` (foreach) path instead.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: devices with a fused AdamW kernel (torch added the CPU one in 2.4)
_FUSED_DEVICES = ("cpu", "cuda") if torch.torch_version.TorchVersion(torch.__version__) >= "2.4" else ("cuda",)


def group_by_device_and_dtype(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor],
                              state_steps: list[Tensor]):
    """Yield ``(device, params, grads, square_avgs, state_steps)`` per device and dtype of the params.

    Only params and grads go through torch's grouping: its checks expect Adam-like state, and a
    layer-wise square_avg (real, 0-d) or a float64 CPU step count beside CUDA params would fail them.
    """
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads], with_indices=True)
    for (device, _), ((device_params, device_grads), indices) in grouped.items():
        yield (device, list(device_params), list(device_grads), [square_avgs[i] for i in indices],
               [state_steps[i] for i in indices])


def fused_supported(params: list[Tensor], *, layerwise: bool = False, eps_inside_sqrt: bool = False) -> bool:
    """Whether ``fused=True`` can run these options (element-wise needs eps outside the root)."""
    return layerwise or (not eps_inside_sqrt and hasattr(torch, "_fused_adamw_")
                         and all(p.device.type in _FUSED_DEVICES for p in params))


def _fusable(param: Tensor, grad: Tensor, square_avg: Tensor) -> bool:
    return (param.dtype in _FUSED_DTYPES and grad.dtype == param.dtype == square_avg.dtype
            and param.is_contiguous() and grad.is_contiguous() and square_avg.is_contiguous()
            and not grad.requires_grad and grad.device == param.device and param.device.type in _FUSED_DEVICES)


#: the step count the kernel sees without bias correction (read only), per device
_INFINITE_STEP: dict[torch.device, Tensor] = {}
#: the CPU step counters' increment, a tensor scalar (a Python 1 sends them down a slower path)
_ONE = torch.tensor(1.0, device="cpu")


def _infinite_step(device: torch.device) -> Tensor:
    step = _INFINITE_STEP.get(device)
    if step is None:
        step = _INFINITE_STEP[device] = torch.full((), math.inf, dtype=torch.float32, device=device)
    return step


def _groups(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], state_steps: list[Tensor]):
    """:func:`group_by_device_and_dtype`, with a shortcut for the usual single device and dtype.
    (The fusable tensors' grads and square_avgs already share their param's device and dtype.)"""
    device, dtype = params[0].device, params[0].dtype
    if all(p.dtype == dtype and p.device == device for p in params):
        return [(device, params, grads, square_avgs, state_steps)]
    return group_by_device_and_dtype(params, grads, square_avgs, state_steps)


def _fused_lam(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], state_steps: list[Tensor],
               *, lr: float, beta: float, eps: float, weight_decay: float, bias_correction: bool,
               maximize: bool, fallback: Callable[..., None]) -> None:
    fused: tuple[list[Tensor], ...] = ([], [], [], [])
    rest: tuple[list[Tensor], ...] = ([], [], [], [])
    for param, grad, square_avg, step in zip(params, grads, square_avgs, state_steps):
        if param.is_complex():
            param, grad, square_avg = (torch.view_as_real(t) for t in (param, grad, square_avg))
        target = fused if _fusable(param, grad, square_avg) else rest
        target[0].append(param)
        target[1].append(grad)
        target[2].append(square_avg)
        target[3].append(step)
    sign = -1.0 if maximize else 1.0
    if fused[0]:
        for device, device_params, device_grads, device_square_avgs, device_steps in _groups(*fused):
            if device_steps[0].is_cpu:  # a tensor scalar keeps CPU steps on the foreach kernel (as torch's Adam)
                torch._foreach_add_(device_steps, _ONE, alpha=1.0)
            else:
                torch._foreach_add_(device_steps, 1)
            if bias_correction:
                kernel_steps = [s.to(device=device, dtype=torch.float32) for s in device_steps]
            else:
                kernel_steps = [_infinite_step(device)] * len(device_params)
            torch._fused_adamw_(device_params, device_grads, device_grads, device_square_avgs, [],
                                kernel_steps, lr=sign * lr, beta1=0.0, beta2=beta,
                                weight_decay=sign * weight_decay, eps=eps, amsgrad=False, maximize=False)
    if rest[0]:
        fallback(*rest, lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                 maximize=maximize)


def _layerwise_lam(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], state_steps: list[Tensor],
                   *, lr: float, beta: float, eps: float, weight_decay: float, bias_correction: bool,
                   eps_inside_sqrt: bool, maximize: bool, fallback: Callable[..., None]) -> None:
    step_lr = lr if maximize else -lr
    on_cpu: tuple[list[Tensor], ...] = ([], [], [], [])
    rest: tuple[list[Tensor], ...] = ([], [], [], [])
    for param, grad, square_avg, step in zip(params, grads, square_avgs, state_steps):
        if torch.is_complex(param):
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
        target = on_cpu if param.is_cpu and grad.is_cpu and square_avg.is_cpu else rest
        for tensors, t in zip(target, (param, grad, square_avg, step)):
            tensors.append(t)
    for param, grad, square_avg, step in zip(*on_cpu):
        step += 1
        flat = grad.reshape(-1)
        if flat.dtype in (torch.float32, torch.float64):  # BLAS dot: twice as fast as a norm here
            sum_of_squares = torch.dot(flat, flat).item()
        else:  # the CPU has no half-precision dot
            sum_of_squares = torch.linalg.vector_norm(flat, dtype=torch.float32).item() ** 2
        v = beta * square_avg.item() + (1 - beta) * sum_of_squares / max(flat.numel(), 1)
        square_avg.fill_(v)
        v_hat = v / (1 - beta ** step.item()) if bias_correction else v
        denom = math.sqrt(v_hat + eps) if eps_inside_sqrt else math.sqrt(v_hat) + eps
        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)
        # denom = 0 only for an all-zero gradient with eps = 0: alpha = inf makes the 0/0 a nan, as elsewhere
        param.add_(grad, alpha=step_lr / denom if denom else math.inf)
    if rest[0]:
        fallback(*rest, lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                 layerwise=True, eps_inside_sqrt=eps_inside_sqrt, maximize=maximize)
