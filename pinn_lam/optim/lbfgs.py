r"""L-BFGS for PINNs that says why it stopped and does not stall silently.

:class:`LBFGS` is :class:`torch.optim.LBFGS` (strong-Wolfe line search, stopping tests, state
keys and, up to round-off, iterates) with the two-loop recursion done as a few matrix operations
(see its docstring), which cuts the optimizer's own time per iteration. It is run in *chunks* of
a few iterations (one ``step`` call each), so the trainer can log, evaluate, checkpoint and honour
a time limit in between. After each chunk :func:`diagnose` classifies the outcome:

* ``None``: the chunk did all its iterations;
* ``"converged"``: the gradient's largest entry fell below ``tolerance_grad``;
* ``"line search failed"``: the step ended early without convergence (zero step, or a direction
  that is not a descent direction), or the loss did not decrease over a whole chunk.

A failed line search in float32 is usually round-off, not a minimum: the trainer then continues
in float64, or restarts L-BFGS (dropping its curvature pairs) before giving up, see
:class:`pinn_lam.training.trainer.Trainer`.

Two choices differ from PyTorch's defaults, for PINN losses that reach :math:`10^{-8}` and below:
``tolerance_change=0`` (PyTorch's :math:`10^{-9}` test on the change of the loss ends float32
runs after a few iterations), and the objective is multiplied by ``scale`` (the reciprocal of the
loss when the optimizer is created), because PyTorch keeps a curvature pair only when
:math:`y^\top s > 10^{-10}`, an absolute threshold that a small loss would never pass.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

#: defaults for :class:`LBFGS` in pinn-lam (overridable through optimizer options)
DEFAULTS: dict[str, Any] = {
    "lr": 1.0,
    "history_size": 50,
    "line_search_fn": "strong_wolfe",
    "tolerance_grad": 1e-9,
    "tolerance_change": 0.0,
}

#: L-BFGS iterations per ``step`` call
CHUNK = 10


class LBFGS(torch.optim.LBFGS):
    r""":class:`torch.optim.LBFGS` with the two-loop recursion done as two triangular solves.

    The same arguments, stopping tests, line search (``torch.optim.lbfgs._strong_wolfe``), state
    keys (``n_iter``, ``func_evals``, ``d``, ``t``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``)
    and, up to round-off, the same iterates as PyTorch's class. With 50 pairs PyTorch's recursion
    launches about 400 vector kernels per iteration, and each of its 100 ``add_`` reads its
    ``alpha``, a tensor, back to the host; here an iteration costs two passes over the pairs and a
    handful of small matrix operations, and the parameters are updated by foreach kernels.

    **The two-loop recursion as triangular systems.** With the pairs :math:`(s_i, y_i)`,
    :math:`i = 0, \dots, m-1`, oldest first, :math:`\rho_i = 1/y_i^\top s_i` and
    :math:`\gamma` = ``H_diag``, PyTorch computes the direction :math:`d = -Hg` as

    .. math::
        q \leftarrow -g;\quad i = m-1, \dots, 0:\ \alpha_i = \rho_i s_i^\top q,\ q \leftarrow q - \alpha_i y_i;
        \qquad r \leftarrow \gamma q;\quad i = 0, \dots, m-1:\ \beta_i = \rho_i y_i^\top r,\
        r \leftarrow r + (\alpha_i - \beta_i) s_i;\qquad d = r.

    When :math:`\alpha_i` is formed, :math:`q = -g - \sum_{j>i} \alpha_j y_j`, so
    :math:`(y_i^\top s_i)\,\alpha_i + \sum_{j>i} (s_i^\top y_j)\,\alpha_j = -s_i^\top g`. With
    :math:`S, Y` the pairs as rows and :math:`R = \operatorname{triu}(S Y^\top)` (the upper
    triangle, diagonal :math:`y_i^\top s_i`), the first loop is the back substitution
    :math:`R\alpha = -Sg`. In the second loop, with :math:`c_i = \alpha_i - \beta_i` and
    :math:`r_0 = \gamma q = -\gamma (g + Y^\top \alpha)`, :math:`r = r_0 + \sum_{j<i} c_j s_j` when
    :math:`\beta_i` is formed, so :math:`(y_i^\top s_i)\,c_i + \sum_{j<i} (s_j^\top y_i)\,c_j =
    (y_i^\top s_i)\,\alpha_i - y_i^\top r_0`: the forward substitution
    :math:`R^\top c = D\alpha + \gamma (Yg + YY^\top \alpha)`, :math:`D = \operatorname{diag} R`. Then

    .. math::
        d = r_0 + S^\top c = -\gamma g + S^\top c - \gamma Y^\top \alpha,

    the direction of the compact representation of Byrd, Nocedal and Schnabel (1994). A new pair
    adds a column to :math:`R` and a row and column to :math:`YY^\top`: the products
    :math:`[S; Y]\,y`, computed in one pass over the pairs with :math:`[S; Y]\,g`; the second pass is
    :math:`[S; Y]^\top [c; -\gamma\alpha]`.

    The sums run in another order than PyTorch's, so the iterates differ by round-off, and on a
    non-convex loss, as PyTorch's own iterates from a start a few ulps away, they can drift apart
    far beyond round-off over many iterations (the line search amplifies small differences).

    **State** (besides PyTorch's keys): ``memory``, shape ``(history_size, 2, n)``, holds the pairs
    (``memory[k] = (s, y)``) as a ring of ``num_pairs`` pairs, the oldest in slot ``oldest``; a new
    pair replaces the oldest once the ring is full (until then the pairs fill slots ``0, 1, ...``
    and ``oldest`` is 0). ``gram``, shape ``(2, history_size, history_size)``, holds :math:`R` (only
    its upper triangle is read) and :math:`YY^\top`, oldest pair first, in its first ``num_pairs``
    rows and columns. The buffers are updated in place (PyTorch's class updates ``prev_flat_grad``
    in place too): serialise or deep-copy a ``state_dict`` to keep it. A state of
    :class:`torch.optim.LBFGS` (``old_dirs``, ``old_stps``, ``ro``) is converted by the next
    ``step``.

    References:
        R. H. Byrd, J. Nocedal, R. B. Schnabel, "Representations of quasi-Newton matrices and their
        use in limited memory methods", Math. Programming 63 (1994) 129-156.
    """

    def objective_changed(self) -> None:
        """Say that the objective has changed (e.g. new collocation points): the next step keeps
        the curvature pairs, whose information about the loss's shape mostly carries over, but
        forms no pair from gradients of two different objectives. Restarting instead (a new
        optimizer) throws the pairs away and begins with a short steepest-descent step."""
        state = self.state[self._params[0]]
        if state.get("n_iter", 0):
            state["objective_changed"] = True

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """At most ``max_iter`` iterations: PyTorch's loop, with :func:`push_pair` and :func:`lbfgs_direction`."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        if isinstance(lr, Tensor) and lr.dim() != 0:
            lr = lr.squeeze()
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        # like PyTorch, the (global) state is registered on the first parameter
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        if "old_dirs" in state:
            _adopt_torch_state(state, history_size)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        opt_cond = flat_grad.abs().max() <= tolerance_grad
        if opt_cond:
            return orig_loss

        # flat views of the parameters (complex ones as real), moved by foreach kernels with pieces
        # of flat vectors (PyTorch's class, whose flat gradient is a view too, needs them contiguous)
        targets = [(torch.view_as_real(p) if p.is_complex() else p).view(-1) for p in self._params]
        numels = [p.numel() for p in targets]
        d, t, H_diag = state.get("d"), state.get("t"), state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                state["num_pairs"], state["oldest"] = 0, 0
                H_diag = 1
            elif state.pop("objective_changed", False):  # no pair across the change (objective_changed)
                d = lbfgs_direction(state, flat_grad, H_diag, None)
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                products = None
                if ys > 1e-10:
                    yy, products = push_pair(state, s, y, ys, history_size, flat_grad)
                    H_diag = ys / yy
                d = lbfgs_direction(state, flat_grad, H_diag, products)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            d_parts = d.split(numels)
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                loss, flat_grad, t, ls_func_evals = strong_wolfe_step(
                    closure, targets, self._gather_flat_grad, d, t, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                torch._foreach_add_(targets, d_parts, alpha=t)
                if n_iter != max_iter:
                    # no evaluation after the last iteration (PyTorch's choice, for stochastic losses)
                    with torch.enable_grad():
                        loss = closure()
                    loss = float(loss)
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, H_diag=H_diag, prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


def strong_wolfe_step(closure: Callable[[], Tensor], targets: list[Tensor], gather_grad: Callable[[], Tensor],
                      d: Tensor, t: float, loss: float, flat_grad: Tensor, gtd: Tensor, *, max_ls: int,
                      c1: float = 1e-4, c2: float = 0.9) -> tuple[float, Tensor, float, int]:
    r"""Move ``targets`` (the parameters, flat direction ``d`` split like them) by the step
    :math:`t` that ``torch.optim.lbfgs._strong_wolfe`` finds from the initial guess ``t``: the
    strong Wolfe conditions :math:`L(x + td) \le L(x) + c_1 t\,g^\top d` and
    :math:`|g(x + td)^\top d| \le c_2 |g^\top d|`, with at most ``max_ls`` evaluations.

    Returns the loss and flat gradient at the new point, the step and the evaluations used.
    """
    numels = [p.numel() for p in targets]
    d_parts = d.split(numels)
    x_init = torch.cat(targets).split(numels)

    def obj_func(x, step, direction):
        torch._foreach_add_(targets, d_parts, alpha=step)
        value = float(closure())
        grad = gather_grad()
        torch._foreach_copy_(targets, x)
        return value, grad

    loss, flat_grad, t, evals = _strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd, c1=c1, c2=c2,
                                              max_ls=max_ls)
    torch._foreach_add_(targets, d_parts, alpha=t)
    return loss, flat_grad, t, evals


def lbfgs_direction(state: dict[str, Any], grad: Tensor, h_diag: Tensor | float,
                    products: Tensor | None = None) -> Tensor:
    r"""The L-BFGS direction :math:`-Hg` from the pairs in ``state`` (see :class:`LBFGS`).

    ``products``: :math:`Sg` and :math:`Yg` as the columns of an ``(m, 2)`` tensor, oldest pair
    first, if already known (:func:`push_pair` computes them in its pass over the pairs).
    """
    m = state.get("num_pairs", 0)
    if m == 0:
        return torch.mul(grad.neg(), h_diag)
    oldest = state["oldest"]
    pairs = state["memory"][:m].view(2 * m, -1)  # rows s, y, s, y, ... in slot order
    if products is None:
        products = _oldest_first(torch.mv(pairs, grad).view(m, 2), oldest)
    r, yy = state["gram"][0, :m, :m], state["gram"][1, :m, :m]
    minus_alpha = torch.linalg.solve_triangular(r, products[:, :1], upper=True)
    rhs = torch.addmm(products[:, 1:], yy, minus_alpha, alpha=-1).mul_(h_diag)
    rhs.addcmul_(r.diagonal().unsqueeze(1), minus_alpha, value=-1)
    c = torch.linalg.solve_triangular(r.mT, rhs, upper=False)
    coefficients = torch.cat((c, minus_alpha.mul(h_diag)), dim=1)
    if oldest:
        coefficients = coefficients.roll(oldest, 0)
    return torch.mv(pairs.T, coefficients.view(-1)).addcmul_(grad, h_diag, value=-1)


def push_pair(state: dict[str, Any], s: Tensor, y: Tensor, ys: Tensor, history_size: int,
              grad: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    r"""Add the pair ``(s, y)`` (with ``ys`` = :math:`y^\top s`) to ``state``, dropping the oldest
    once ``history_size`` are kept.

    Returns :math:`y^\top y` and, with ``grad``, the products of the pairs with it from the same
    pass over them (:math:`Sg` and :math:`Yg` as columns, oldest pair first), for
    :func:`lbfgs_direction`.
    """
    memory = state.get("memory")
    if memory is None or memory.shape[0] != history_size or memory.dtype != y.dtype or memory.device != y.device:
        _rebuild(state, _chronological_pairs(state), history_size, y)
        memory = state["memory"]
    m, oldest, gram = state["num_pairs"], state["oldest"], state["gram"]
    slot = (oldest + m) % history_size
    if m == history_size:  # the new pair replaces the oldest: shift the Gram matrices up and left
        oldest = (oldest + 1) % history_size
        gram[:, :-1, :-1] = gram[:, 1:, 1:].clone()
    else:
        m += 1
    memory[slot, 0] = s
    memory[slot, 1] = y
    pairs = memory[:m].view(2 * m, -1)  # rows s, y, s, y, ... in slot order
    if grad is None:
        with_y, with_grad = _oldest_first(torch.mv(pairs, y).view(m, 2), oldest), None
    else:  # columns (s_i^T y, y_i^T y) and (s_i^T g, y_i^T g)
        with_y, with_grad = _oldest_first(torch.mm(torch.stack((y, grad)), pairs.T).view(2, m, 2), oldest, dim=1)
    new = m - 1
    gram[:, :m, new] = with_y.T
    gram[1, new, :m] = with_y[:, 1]
    gram[0, new, new] = ys
    state["num_pairs"], state["oldest"] = m, oldest
    return gram[1, new, new], with_grad


def _oldest_first(products: Tensor, oldest: int, dim: int = 0) -> Tensor:
    """``products`` of the pairs in slot order, reordered oldest first along ``dim``."""
    return products.roll(-oldest, dim) if oldest else products


def _chronological_pairs(state: dict[str, Any]) -> list[tuple[Tensor, Tensor]]:
    memory = state.get("memory")
    if memory is None:
        return []
    slots = [(state["oldest"] + i) % memory.shape[0] for i in range(state["num_pairs"])]
    return [(memory[k, 0], memory[k, 1]) for k in slots]


def _rebuild(state: dict[str, Any], pairs: list[tuple[Tensor, Tensor]], history_size: int, like: Tensor) -> None:
    """Fresh buffers for ``history_size`` pairs on ``like``'s device and dtype, holding the newest of ``pairs``."""
    n = like.numel()
    state["memory"] = like.new_zeros(history_size, 2, n)
    state["gram"] = like.new_zeros(2, history_size, history_size)
    state["num_pairs"], state["oldest"] = 0, 0
    for s, y in pairs[-history_size:]:
        s, y = s.to(like), y.to(like)
        push_pair(state, s, y, y.dot(s), history_size)


def _adopt_torch_state(state: dict[str, Any], history_size: int) -> None:
    """Replace the pair lists of a :class:`torch.optim.LBFGS` state by :class:`LBFGS`'s buffers."""
    old_dirs, old_stps = state.pop("old_dirs"), state.pop("old_stps")
    for key in ("ro", "al", "memory", "gram"):
        state.pop(key, None)
    state["num_pairs"], state["oldest"] = 0, 0
    if old_dirs:
        _rebuild(state, list(zip(old_stps, old_dirs)), history_size, old_dirs[0])


def make_lbfgs(params: Iterable[torch.Tensor], **options: Any) -> LBFGS:
    """An :class:`LBFGS` with pinn-lam's :data:`DEFAULTS` (``max_iter`` is set per chunk)."""
    settings = {**DEFAULTS, **options}
    if settings.get("line_search_fn") not in (None, "strong_wolfe"):
        raise ValueError(f"line_search_fn must be 'strong_wolfe' or None, got {settings['line_search_fn']!r}")
    if settings["lr"] <= 0:
        raise ValueError(f"Invalid learning rate for L-BFGS: {settings['lr']}")
    return LBFGS(params, max_iter=CHUNK, max_eval=25 * CHUNK, **settings)


def set_chunk(optimizer: torch.optim.LBFGS, iterations: int) -> None:
    """Make the next ``step`` do at most ``iterations`` iterations."""
    for group in optimizer.param_groups:
        group["max_iter"] = int(iterations)
        group["max_eval"] = 25 * int(iterations)


def iterations_done(optimizer: torch.optim.LBFGS) -> int:
    """Total L-BFGS iterations this optimizer has done."""
    param = optimizer.param_groups[0]["params"][0]
    return int(optimizer.state.get(param, {}).get("n_iter", 0))


def max_abs_grad(optimizer: torch.optim.LBFGS) -> float:
    """Largest absolute gradient entry of the optimizer's parameters (as last computed)."""
    largest = 0.0
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                largest = max(largest, float(p.grad.detach().abs().max()))
    return largest


def diagnose(optimizer: torch.optim.LBFGS, requested: int, done: int) -> str | None:
    """Why a chunk of ``requested`` iterations that did ``done`` stopped (``None``: it did not)."""
    if done >= requested:
        return None
    if max_abs_grad(optimizer) <= optimizer.param_groups[0]["tolerance_grad"]:
        return "converged"
    return "line search failed"
