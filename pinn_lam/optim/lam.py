r"""LAM (Layer-wise Adaptive Moments), written in the manner of ``torch.optim``.

The class :class:`LAM` validates options and manages state; the functional :func:`lam`
does the arithmetic and dispatches to one of three implementations that compute the same
update (they agree to ~1e-15 relative in float64; ``tests/test_optim.py`` holds them to 1e-12):

* ``_single_tensor_lam``: a for-loop over tensors, the readable ground truth;
* ``_multi_tensor_lam``: ``torch._foreach_*`` kernels, the default on CUDA for layer-wise LAM
  (and for element-wise LAM with eps inside the root);
* ``_fused_lam`` and ``_layerwise_lam`` (``pinn_lam/optim/lam_fast.py``): as few passes over memory
  as each mode allows; ``_fused_lam`` is the default on CUDA and, with torch >= 2.4, on CPU;
  ``_layerwise_lam`` on CPU (see that module for how and why).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT, _get_scalar_dtype, _get_value

from pinn_lam.optim.lam_fast import _fused_lam, _layerwise_lam, fused_supported, group_by_device_and_dtype

__all__ = ["LAM", "lam"]

#: per-group options besides ``params`` and ``lr``, with their defaults (``__setstate__`` uses them)
_FLAGS = {"weight_decay": 0.0, "bias_correction": False, "layerwise": False, "eps_inside_sqrt": False,
          "maximize": False, "foreach": None, "fused": None}


def _check_options(lr, beta, eps, weight_decay, foreach=None, fused=None, layerwise=False,
                   eps_inside_sqrt=False) -> None:
    """Raise a one-line ``ValueError`` naming the first invalid option."""
    for name, value in (("learning rate", lr), ("beta", beta), ("eps", eps), ("weight_decay", weight_decay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Invalid {name}: {value!r} (must be a real number)")
    if not 0.0 <= lr < math.inf:
        raise ValueError(f"Invalid learning rate: {lr} (must be finite and >= 0)")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"Invalid beta: {beta} (must be in [0, 1))")
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"Invalid eps: {eps} (must be finite and >= 0)")
    if not 0.0 <= weight_decay < math.inf:
        raise ValueError(f"Invalid weight_decay: {weight_decay} (must be finite and >= 0)")
    if foreach and fused:
        raise ValueError("Invalid combination: foreach=True and fused=True (choose at most one)")
    if fused and eps_inside_sqrt and not layerwise:
        raise ValueError("fused=True needs eps outside the square root in the element-wise mode "
                         "(got eps_inside_sqrt=True, layerwise=False)")


class LAM(Optimizer):
    r"""Layer-wise Adaptive Moments: a decaying average of squared gradients scales each step.

    .. math::
       \begin{aligned}
       &\textbf{input}: \eta \text{ (lr)},\ \beta \text{ (beta)},\ \epsilon \text{ (eps)},\
         \lambda \text{ (weight decay)},\ w_0 \text{ (params)},\ f(w) \text{ (objective)} \\
       &\textbf{initialize}: v_0 \leftarrow 0 \\
       &\textbf{for}\ t = 1, 2, \ldots\ \textbf{do} \\
       &\quad g_t \leftarrow \nabla_w f_t(w_{t-1})\quad (\text{if maximize: } g_t \leftarrow -g_t) \\
       &\quad w_{t-1} \leftarrow w_{t-1} - \eta \lambda w_{t-1}
            \quad (\text{decoupled weight decay}) \\
       &\quad \textbf{if}\ \text{layerwise}:\ v_t \leftarrow (1-\beta)\,\operatorname{mean}(g_t^2)
            + \beta v_{t-1} \quad (\text{one scalar per tensor}) \\
       &\quad \textbf{else}:\ v_t \leftarrow (1-\beta)\, g_t^2 + \beta v_{t-1}
            \quad (\text{element-wise}) \\
       &\quad \hat v_t \leftarrow v_t / (1 - \beta^t)\ \textbf{if}\ \text{bias\_correction}
            \ \textbf{else}\ v_t \\
       &\quad w_t \leftarrow w_{t-1} - \eta\, g_t / (\sqrt{\hat v_t} + \epsilon)
            \quad \big(\text{or } \eta\, g_t / \sqrt{\hat v_t + \epsilon}\ \text{if eps\_inside\_sqrt}\big) \\
       &\textbf{return}\ w_t
       \end{aligned}

    Without bias correction the first step is :math:`\eta\,g/\sqrt{(1-\beta)g^2} =
    \eta/\sqrt{1-\beta}\cdot\operatorname{sign}(g)` (about :math:`3.16\,\eta` for
    :math:`\beta = 0.9`); with it, the first step is :math:`\eta\operatorname{sign}(g)`.

    Args:
        params: parameters or dicts defining parameter groups (each group may override any option).
        lr: base learning rate :math:`\eta` (units of the parameters per step), >= 0.
        beta: decay :math:`\beta` of the squared-gradient average, in [0, 1).
        eps: :math:`\epsilon` added to the denominator (units of the gradient), >= 0.
        weight_decay: decoupled decay :math:`\lambda` (as in AdamW), >= 0.
        bias_correction: divide :math:`v_t` by :math:`1-\beta^t` before the square root.
        layerwise: keep one scalar :math:`v` per parameter tensor, updated with the mean of
            :math:`g^2` over that tensor; the state is then one number per tensor.
        eps_inside_sqrt: use :math:`\eta/\sqrt{v+\epsilon}` (the description's Property 1).
        maximize: maximize the objective instead of minimizing it.
        foreach: ``True`` uses ``torch._foreach_*`` kernels, ``False`` the for-loop path;
            ``None`` picks the fastest correct path for the device (fused where it exists, else
            foreach on CUDA and the for-loop on CPU).
        fused: ``True`` uses the fewest passes over memory: one fused kernel per tensor in the
            element-wise mode (eps outside the root only), a reduction and an axpy per tensor in
            the layer-wise mode (CPU).

    Complex parameters are treated as their ``torch.view_as_real``; parameters whose ``grad``
    is ``None`` are skipped; sparse gradients raise ``RuntimeError``.

    Example::

        >>> model = torch.nn.Linear(3, 1)
        >>> optimizer = LAM(model.parameters(), lr=1e-3)
        >>> loss = model(torch.ones(2, 3)).square().mean()
        >>> loss.backward(); optimizer.step(); optimizer.zero_grad()
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, beta: float = 0.9, eps: float = 1e-8, *,
                 weight_decay: float = 0.0, bias_correction: bool = False, layerwise: bool = False,
                 eps_inside_sqrt: bool = False, maximize: bool = False, foreach: bool | None = None,
                 fused: bool | None = None) -> None:
        _check_options(lr, beta, eps, weight_decay, foreach, fused, layerwise, eps_inside_sqrt)
        defaults = dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                        layerwise=layerwise, eps_inside_sqrt=eps_inside_sqrt, maximize=maximize,
                        foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group, checking the options it overrides as the constructor checks the defaults."""
        merged = {**getattr(self, "defaults", {}), **param_group}
        if "lr" in merged:  # the constructor has already checked the defaults themselves
            _check_options(merged["lr"], merged["beta"], merged["eps"], merged["weight_decay"], merged["foreach"],
                           merged["fused"], merged["layerwise"], merged["eps_inside_sqrt"])
        super().add_param_group(param_group)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, default in _FLAGS.items():
                group.setdefault(key, default)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=_get_scalar_dtype())

    def _init_group(self, group: dict, params: list[Tensor], grads: list[Tensor],
                    square_avgs: list[Tensor], state_steps: list[Tensor]) -> bool:
        has_complex = False
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("LAM does not support sparse gradients (use dense gradients)")
            has_complex |= torch.is_complex(p)
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:
                # the step count lives on the CPU (as in torch.optim): it only feeds Python scalars
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["square_avg"] = (torch.zeros((), dtype=p.real.dtype, device=p.device) if group["layerwise"]
                                       else torch.zeros_like(p, memory_format=torch.preserve_format))
            # (a 0-d parameter stores a 0-d square_avg in both modes, so only tensors can mismatch)
            elif p.dim() > 0 and group["layerwise"] != (state["square_avg"].dim() == 0):
                raise ValueError(f"layerwise={group['layerwise']} does not match the saved state of a parameter "
                                 f"(its square_avg has shape {tuple(state['square_avg'].shape)})")
            square_avgs.append(state["square_avg"])
            state_steps.append(state["step"])
        return has_complex

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            square_avgs: list[Tensor] = []
            state_steps: list[Tensor] = []
            has_complex = self._init_group(group, params, grads, square_avgs, state_steps)
            lam(params, grads, square_avgs, state_steps, foreach=group["foreach"], fused=group["fused"],
                lr=group["lr"], beta=group["beta"], eps=group["eps"], weight_decay=group["weight_decay"],
                bias_correction=group["bias_correction"], layerwise=group["layerwise"],
                eps_inside_sqrt=group["eps_inside_sqrt"], maximize=group["maximize"], has_complex=has_complex)
        return loss


def default_implementation(params: list[Tensor], *, layerwise: bool = False, eps_inside_sqrt: bool = False,
                           fused: bool | None = None) -> str:
    """The path ``lam(foreach=None, fused=fused)`` takes: ``"single"``, ``"foreach"`` or ``"fused"``
    (``fused=False`` rules the fused path out and keeps the rest of the choice).

    Measured on CPU (``pinn-lam bench optimizer``, docs/lam.md): the foreach kernels allocate
    fresh intermediates every step and several passes over memory; the fused paths make one pass
    (element-wise) or two (layer-wise). Element-wise LAM with eps inside the root has no fused
    kernel and takes the for-loop. On CUDA element-wise LAM takes the fused kernel too (one
    launch per device and dtype; on an H200, 1e8 parameters: 1.07 ms against foreach's 1.79 ms,
    docs/lam.md); layer-wise LAM, and element-wise with eps inside the root, take foreach (the
    fused layer-wise path reads each tensor's norm back to the host).
    """
    if not params:
        return "single"
    cuda = all(p.device.type == "cuda" for p in params)
    if fused is not False:
        fusable = (not layerwise and fused_supported(params, eps_inside_sqrt=eps_inside_sqrt) if cuda
                   else fused_supported(params, layerwise=layerwise, eps_inside_sqrt=eps_inside_sqrt))
        if fusable:
            return "fused"
    return "foreach" if cuda else "single"


def lam(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], state_steps: list[Tensor],
        *, foreach: bool | None = None, fused: bool | None = None, lr: float, beta: float, eps: float,
        weight_decay: float = 0.0, bias_correction: bool = False, layerwise: bool = False,
        eps_inside_sqrt: bool = False, maximize: bool = False, has_complex: bool = False) -> None:
    r"""Functional LAM: update ``params`` and ``square_avgs`` in place and add 1 to ``state_steps``.

    See :class:`LAM` for the algorithm. ``square_avgs[i]`` has the shape of ``params[i]``
    (element-wise) or is a 0-d real tensor (``layerwise``); ``state_steps[i]`` is a 0-d tensor.
    """
    _check_options(lr, beta, eps, weight_decay, foreach, fused, layerwise, eps_inside_sqrt)
    if fused:
        path = "fused"
    elif foreach is not None:
        path = "foreach" if foreach else "single"
    else:
        path = default_implementation(params, layerwise=layerwise, eps_inside_sqrt=eps_inside_sqrt, fused=fused)
    kwargs = dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                  maximize=maximize)
    if path == "fused" and layerwise:
        _layerwise_lam(params, grads, square_avgs, state_steps, eps_inside_sqrt=eps_inside_sqrt,
                       fallback=_multi_tensor_lam, **kwargs)
    elif path == "fused":
        _fused_lam(params, grads, square_avgs, state_steps, fallback=_multi_tensor_lam, **kwargs)
    else:
        implementation = _multi_tensor_lam if path == "foreach" else _single_tensor_lam
        implementation(params, grads, square_avgs, state_steps, layerwise=layerwise,
                       eps_inside_sqrt=eps_inside_sqrt, has_complex=has_complex, **kwargs)


def _single_tensor_lam(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor],
                       state_steps: list[Tensor], *, lr: float, beta: float, eps: float, weight_decay: float,
                       bias_correction: bool, layerwise: bool = False, eps_inside_sqrt: bool = False,
                       maximize: bool, has_complex: bool = False) -> None:
    # maximize only flips the sign of the step: g**2 does not see it, so no negated copy of g is made
    step_lr = lr if maximize else -lr
    for param, grad, square_avg, step_t in zip(params, grads, square_avgs, state_steps):
        if torch.is_complex(param):
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
            if not layerwise:
                square_avg = torch.view_as_real(square_avg)
        step_t += 1
        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)
        if layerwise:
            mean_square = torch.linalg.vector_norm(grad).square_().div_(grad.numel())
            square_avg.mul_(beta).add_(mean_square, alpha=1 - beta)
        else:
            square_avg.mul_(beta).addcmul_(grad, grad, value=1 - beta)
        v = square_avg / (1 - beta ** _get_value(step_t)) if bias_correction else square_avg
        denom = (v + eps).sqrt_() if eps_inside_sqrt else v.sqrt().add_(eps)
        param.addcdiv_(grad, denom, value=step_lr)


def _multi_tensor_lam(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor],
                      state_steps: list[Tensor], *, lr: float, beta: float, eps: float, weight_decay: float,
                      bias_correction: bool, layerwise: bool = False, eps_inside_sqrt: bool = False,
                      maximize: bool, has_complex: bool = False) -> None:
    if not params:
        return
    step_lr = lr if maximize else -lr
    for _, device_params, device_grads, device_square_avgs, device_steps in group_by_device_and_dtype(
            params, grads, square_avgs, state_steps):
        if has_complex:
            for i, p in enumerate(device_params):
                if torch.is_complex(p):
                    device_params[i] = torch.view_as_real(p)
                    device_grads[i] = torch.view_as_real(device_grads[i])
                    if not layerwise:
                        device_square_avgs[i] = torch.view_as_real(device_square_avgs[i])
        torch._foreach_add_(device_steps, 1)
        if weight_decay != 0:
            torch._foreach_mul_(device_params, 1 - lr * weight_decay)
        torch._foreach_mul_(device_square_avgs, beta)
        if layerwise:
            mean_squares = torch._foreach_norm(device_grads)
            torch._foreach_mul_(mean_squares, mean_squares)
            torch._foreach_div_(mean_squares, [float(g.numel()) for g in device_grads])
            torch._foreach_add_(device_square_avgs, mean_squares, alpha=1 - beta)
        else:
            torch._foreach_addcmul_(device_square_avgs, device_grads, device_grads, value=1 - beta)
        if bias_correction:  # one fresh list of denominators; the rest happens in place
            denom = torch._foreach_div(device_square_avgs, [1 - beta ** _get_value(s) for s in device_steps])
            if eps_inside_sqrt:
                torch._foreach_add_(denom, eps)
            torch._foreach_sqrt_(denom)
        elif eps_inside_sqrt:
            denom = torch._foreach_add(device_square_avgs, eps)
            torch._foreach_sqrt_(denom)
        else:
            denom = torch._foreach_sqrt(device_square_avgs)
        if not eps_inside_sqrt:
            torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(device_params, device_grads, denom, value=step_lr)
