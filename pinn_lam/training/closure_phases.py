"""The quasi-Newton and least-squares phases of the training loop: L-BFGS-type optimizers run in
chunks of iterations with a closure, Levenberg–Marquardt one iteration per step on the residual
vector, and how the loop reacts to the way a chunk ended (converged, a failed line search in
float32 continues in float64, restarts, a stop). :class:`ClosurePhases` is part of
:class:`~pinn_lam.training.trainer.Trainer`, whose state it reads and writes."""
from __future__ import annotations

import torch
from torch import Tensor

from pinn_lam.optim import lbfgs, lm, registry
from pinn_lam.training.jacobian import pinn_jacobian
from pinn_lam.training.phases import Phase


class ClosurePhases:
    """Steps of the phases whose optimizer needs a closure (see the module docstring)."""

    def _closure_step(self, phase: Phase, scale: float, values: dict[str, float]) -> int:
        """One chunk of a quasi-Newton phase (at most ``lbfgs.CHUNK`` iterations, one history row)."""
        first = [True]

        def closure() -> Tensor:
            if first[0]:  # gradients at the current point were computed by the loop already
                first[0] = False
                return torch.tensor(values["loss"] * scale)
            self.optimizer.zero_grad(set_to_none=True)
            total, _ = self.loss()
            scaled = total * scale
            scaled.backward()
            if self.data_parallel is not None:
                self.data_parallel.all_reduce_gradients(self.model)
            return scaled.detach()

        requested = min(lbfgs.CHUNK, phase.iterations - self.phase_iteration)
        lbfgs.set_chunk(self.optimizer, requested)
        before = lbfgs.iterations_done(self.optimizer)
        self.optimizer.step(closure)
        done = lbfgs.iterations_done(self.optimizer) - before
        self.lbfgs["previous"] = values["loss"]
        reason = lbfgs.diagnose(self.optimizer, requested, done)
        if reason is not None:
            self.lbfgs["pending"] = reason
        elif done:
            self.lbfgs["failures"] = 0
        return done

    def _residual_step(self) -> int:
        """One Levenberg–Marquardt iteration; its stop reason ends the phase (:meth:`_handle_lbfgs_failure`)."""
        before = lm.iterations_done(self.optimizer)
        self.optimizer.step(lambda: self.loss.residual_vector().detach(), jacobian=pinn_jacobian(self.loss))
        reason = lm.stop_reason(self.optimizer)
        if reason is not None:
            self.lbfgs["pending"] = reason
        return lm.iterations_done(self.optimizer) - before

    def _handle_lbfgs_failure(self) -> bool:
        """React to how the last L-BFGS chunk ended; return True if the phase is over."""
        reason = self.lbfgs.get("pending")
        if reason is None:
            return False
        self.lbfgs["pending"] = None
        name = self.phases[self.phase_index].optimizer
        if registry.get(name).residuals:  # its own damping already did what a restart would
            self.events.append(f"{name} at iteration {self.iteration}: {reason}")
            return True
        where = f"{name} at iteration {self.iteration}"
        if reason == "converged":
            _, values = self._loss_and_grad(1.0, backward=False)
            start = self.lbfgs.get("start")
            if start is not None and not values["loss"] < start:
                self.events.append(f"{where}: gradient below tolerance at loss {values['loss']:.3e}, not below "
                                   f"the phase's first loss {start:.3e} (a flat region, not a minimum); stopping L-BFGS")
            else:
                self.events.append(f"{where}: converged (gradient below tolerance)")
            return True
        self.lbfgs["failures"] += 1
        if self.dtype == torch.float32:
            self.events.append(f"{where}: {reason} in float32; continuing in float64")
            self._to_dtype(torch.float64)
            self.lbfgs["failures"] = 0  # float64 gets its own restarts
        elif self.lbfgs["failures"] <= 2:
            self.events.append(f"{where}: {reason}; restarting {registry.get(name).label} without its history")
        else:
            self.events.append(f"{where}: {reason} again after restarts; stopping {registry.get(name).label}")
            return True
        failures = self.lbfgs["failures"]
        self._new_optimizer()
        self.lbfgs["failures"] = failures
        return False
