"""How a run is measured: against its reference when it has one, by its residual when not.

During training (every ``eval_every`` iterations) the relative L2 error is taken on at most
:data:`EVAL_POINTS` of the reference's points, in PyTorch where the model is (see
:class:`~pinn_lam.training.metrics.RelativeL2`); the final metrics use every reference point.
With several outputs the error is over all of them together (``rel_l2``) and per output
(``rel_l2_u``, ``rel_l2_v``, ...). Without a reference, the root mean square of the equations'
residual on :data:`RESIDUAL_POINTS` fixed points of the domain is the measure.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pinn_lam.errors import ProblemError
from pinn_lam.training.loss import PINNLoss, unknown_parameters
from pinn_lam.training.metrics import RelativeL2, max_abs_error, relative_l2_error
from pinn_lam.training.outputs import predict
from pinn_lam.training.sampling import unit_sampler

#: reference points the error is evaluated on during training
EVAL_POINTS = 16384
#: points of the residual measure of a run without a reference
RESIDUAL_POINTS = 4096
#: what the metrics say when a problem has no reference
NO_REFERENCE = "none given: the problem has no reference solver, exact solution or data; errors are not measured"


def no_reference(problem) -> str:
    """What the metrics say when ``problem`` has no reference: :data:`NO_REFERENCE` and why
    there is no automatic one."""
    from pinn_lam.pde.auto_reference import unsupported_reason

    reason = unsupported_reason(problem)
    return NO_REFERENCE if reason is None else f"{NO_REFERENCE}; no automatic reference: {reason}"


def reference_arrays(problem, reference) -> tuple[np.ndarray, np.ndarray]:
    """The reference's points ``(M, d)`` and values ``(M, m)``, checked against the problem."""
    points = np.asarray(reference.points(), dtype=np.float64)
    values = np.asarray(reference.values(), dtype=np.float64).reshape(len(points), -1)
    d, m = len(problem.variables), len(problem.outputs)
    if points.ndim != 2 or points.shape[1] != d:
        raise ProblemError(f"the reference is in {points.shape[-1]} variable(s); the problem has {d} "
                           f"({', '.join(problem.variables)})")
    if values.shape[1] != m:
        raise ProblemError(f"the reference has {values.shape[1]} output(s); the problem has {m} "
                           f"({', '.join(problem.outputs)})")
    if not np.isfinite(values).all():
        raise ProblemError("the reference has values that are not finite")
    return points, values


class Evaluation:
    """The measures of one run (``problem``'s ``reference`` may be ``None``)."""

    def __init__(self, problem, reference, loss: PINNLoss, seed: int = 0) -> None:
        self.problem, self.reference, self.loss = problem, reference, loss
        if reference is not None:
            self.points, self.values = reference_arrays(problem, reference)
            stride = max(1, len(self.points) // EVAL_POINTS)
            self._error = RelativeL2(self.points[::stride], self.values[::stride])
        else:
            # a generator of its own: the run's points are drawn exactly as with a reference
            unit = unit_sampler("sobol", np.random.default_rng([int(seed), 7919]))
            self._residual_points = problem.domain.sample(RESIDUAL_POINTS, unit)

    def residual_rms(self) -> float:
        """Root mean square of the equations' residuals at the fixed residual points."""
        first = next(self.loss.model.parameters())
        points = torch.as_tensor(self._residual_points, device=first.device, dtype=first.dtype)
        residual = self.loss.pde_residual(points).detach().to(torch.float64)
        return float(residual.square().mean().sqrt())

    def during_training(self, model: nn.Module) -> dict[str, float]:
        values = {"rel_l2": self._error(model)} if self.reference is not None else {"residual_rms": self.residual_rms()}
        values.update({name: float(p.detach()) for name, p in unknown_parameters(model).items()})
        return values

    def final(self, model: nn.Module) -> dict[str, Any]:
        """The final metrics on every reference point (or the residual measure)."""
        metrics: dict[str, Any] = {}
        unknowns = {name: float(p.detach()) for name, p in unknown_parameters(model).items()}
        if unknowns:
            metrics["unknowns"] = unknowns
            true = dict(getattr(self.problem, "true_unknowns", None) or {})
            if true:
                metrics["unknown_errors"] = {name: abs(unknowns[name] / value - 1.0)
                                             for name, value in true.items() if name in unknowns and value}
        if self.reference is None:
            metrics.update(rel_l2=None, reference=no_reference(self.problem),
                           residual_rms=self.residual_rms())
            return metrics
        outputs = self.problem.outputs
        prediction = predict(model, self.points).reshape(len(self.points), -1)
        metrics.update(rel_l2=relative_l2_error(prediction, self.values), max_abs=max_abs_error(prediction, self.values))
        if len(outputs) > 1:
            for k, name in enumerate(outputs):
                metrics[f"rel_l2_{name}"] = relative_l2_error(prediction[:, k], self.values[:, k])
                metrics[f"max_abs_{name}"] = max_abs_error(prediction[:, k], self.values[:, k])
            pair = getattr(self.problem, "complex_outputs", None)
            if pair:
                i, j = outputs.index(pair[0]), outputs.index(pair[1])
                modulus, true_modulus = (np.hypot(a[:, i], a[:, j]) for a in (prediction, self.values))
                metrics.update(rel_l2_abs=relative_l2_error(modulus, true_modulus),
                               max_abs_abs=max_abs_error(modulus, true_modulus))
        if self.problem.has_exact:
            exact = np.asarray(self.problem.exact_values(self.points)).reshape(prediction.shape)
            metrics.update(rel_l2_exact=relative_l2_error(prediction, exact), max_abs_exact=max_abs_error(prediction, exact))
        metrics.update(evaluated_on=f"{len(self.points)} reference points",
                       reference=getattr(self.reference, "method", ""),
                       reference_error_estimate=self.reference.error_estimate)
        return metrics
