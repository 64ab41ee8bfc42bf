r"""The training loop: optimizer phases, learning-rate decay, resampling, evaluation, checkpoints.

A run is a sequence of *phases*, each an optimizer by name and a number of iterations, e.g.
LAM for 3000 iterations then L-BFGS for 2000 (``"lam+lbfgs"``). Within a first-order phase of
:math:`T` iterations the learning rate decays exponentially from :math:`\eta` to
:math:`\eta\,\gamma`: :math:`\eta_t = \eta\,\gamma^{t/T}` (``lr_decay`` :math:`=\gamma`;
1 keeps it constant). L-BFGS runs in chunks (:mod:`pinn_lam.optim.lbfgs`). A least-squares phase
(Levenberg–Marquardt, :mod:`pinn_lam.optim.lm`) does one iteration per step on the loss's residual
vector with its ``torch.func`` Jacobian (:mod:`pinn_lam.training.jacobian`), in float64 (a float32
run continues in float64 from such a phase on), and ends early with the optimizer's stop reason.

Iteration :math:`i` of the loop, with :math:`i` optimizer steps done so far:

1. resample the points if :math:`i` is a positive multiple of ``resample_every`` (first-order phases);
2. evaluate the loss and its gradient at the current parameters; a non-finite value raises
   :class:`~pinn_lam.errors.NonFiniteLossError` naming :math:`i` and the term, and a loss that
   has exploded for a sustained stretch (:class:`~pinn_lam.training.guards.DivergenceGuard`)
   raises :class:`~pinn_lam.errors.DivergenceError` the same way;
3. log a history row for iteration :math:`i`, evaluating the error when :math:`i` has reached
   a multiple of ``eval_every`` since the last evaluation (an L-BFGS chunk may end between
   multiples);
4. write a checkpoint when :math:`i` has likewise reached a multiple of ``checkpoint_every`` (so
   a checkpoint always holds parameters whose loss was finite and within the divergence bounds;
   a checkpoint due while the loss is out of bounds waits until it is back);
5. step the optimizer, then call ``callback(state)``; a true return value stops training;
6. poll ``stop_requested()``: a signal number makes the trainer checkpoint the state after
   :math:`i+1` steps and raise :class:`~pinn_lam.errors.TrainingInterrupted`.

Adaptive loss weights (:mod:`pinn_lam.training.weighting`, ``loss.weighting``) are updated
before step 2; when they change the objective of an L-BFGS phase, the optimizer is told
(:meth:`~pinn_lam.optim.lbfgs.LBFGS.objective_changed`).

A checkpoint restores everything the loop depends on (parameters, optimizer state, points,
sampler generator, counters, history, adaptive loss weights), so on CPU a resumed run is
bit-identical to an uninterrupted one. The trainer prints nothing.
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pinn_lam.optim import registry
from pinn_lam.optim.registry import make_optimizer, parse_phases  # noqa: F401 (re-exported)
from pinn_lam.training.checkpoint import save_checkpoint
from pinn_lam.errors import DivergenceError, NonFiniteLossError, TrainingInterrupted
from pinn_lam.training.guards import DivergenceGuard, signal_name
from pinn_lam.training.closure_phases import ClosurePhases
from pinn_lam.training.loss import PINNLoss
from pinn_lam.training.phases import Phase, TrainState, split_iterations  # noqa: F401 (re-exported)
from pinn_lam.training.sampling import PointSampler


class Trainer(ClosurePhases):
    """Runs ``phases`` on ``loss`` (see the module docstring for the loop).

    Args:
        model, loss: the network and its :class:`~pinn_lam.training.loss.PINNLoss`.
        phases: list of :class:`Phase`.
        sampler: draws new points for resampling (its state is checkpointed).
        resample_every: resample every this many iterations in first-order phases (``None``: never).
        adaptive_every: every this many iterations (any phase) redraw the collocation points by the
            residual-based adaptive distribution (:meth:`~pinn_lam.training.sampling.PointSampler.adaptive`)
            from ``adaptive_pool`` candidates; L-BFGS keeps its curvature pairs across the
            redraw (:meth:`pinn_lam.optim.lbfgs.LBFGS.objective_changed`) and forms none across it.
        lr_decay: final/initial learning-rate ratio within each first-order phase.
        evaluate: ``evaluate(model) -> {"rel_l2": ..., ...}``, called every ``eval_every`` iterations.
        checkpoint_path, checkpoint_every: where and how often to checkpoint (also at the end).
        time_limit: stop after this many seconds of training.
        callback: ``callback(TrainState) -> bool | None``.
        stop_requested: ``stop_requested() -> int | None``, polled after every step; a signal
            number checkpoints the current state and raises :class:`~pinn_lam.errors.TrainingInterrupted`
            (see :class:`~pinn_lam.training.guards.StopSignals`).
        extra: JSON-like data stored in every checkpoint (the run's configuration).
        data_parallel: this rank's :class:`~pinn_lam.training.distributed.DataParallel` when the
            run spans several processes (``loss`` then a
            :class:`~pinn_lam.training.distributed.ShardedLoss`): gradients are summed over the
            ranks after every backward pass, and the clock, the callback's answer and the signals
            are made common after every step.
    """

    def __init__(self, model: nn.Module, loss: PINNLoss, phases: Sequence[Phase], *,
                 sampler: PointSampler | None = None, resample_every: int | None = None, lr_decay: float = 1.0,
                 adaptive_every: int | None = None, adaptive_pool: int = 65536,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None, eval_every: int | None = None,
                 checkpoint_path=None, checkpoint_every: int | None = None, time_limit: float | None = None,
                 callback: Callable[[TrainState], Any] | None = None, extra: dict[str, Any] | None = None,
                 stop_requested: Callable[[], int | None] | None = None, data_parallel=None) -> None:
        for label, value in (("resample_every", resample_every), ("eval_every", eval_every),
                             ("adaptive_every", adaptive_every), ("adaptive_pool", adaptive_pool),
                             ("checkpoint_every", checkpoint_every)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{label} must be a positive integer or None, got {value!r}")
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be positive seconds, got {time_limit!r}")
        if not 0 < lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
        if (resample_every is not None or adaptive_every is not None) and sampler is None:
            raise ValueError("resample_every and adaptive_every need a sampler")
        # torch.optim imports torch._dynamo when it builds its first optimizer (seconds, once per
        # process); import it now so that the training clock measures training
        with contextlib.suppress(ImportError):
            import torch._dynamo  # noqa: F401
        self.model, self.loss, self.phases = model, loss, list(phases)
        self.sampler, self.resample_every, self.lr_decay = sampler, resample_every, float(lr_decay)
        self.adaptive_every, self.adaptive_pool = adaptive_every, int(adaptive_pool)
        self.evaluate, self.eval_every = evaluate, eval_every
        self.checkpoint_path, self.checkpoint_every = checkpoint_path, checkpoint_every
        self.time_limit, self.callback, self.extra = time_limit, callback, dict(extra or {})
        self.stop_requested, self.data_parallel = stop_requested, data_parallel
        self.divergence = DivergenceGuard()
        # loop state (all of it goes into checkpoints)
        self.iteration = 0
        self.phase_index = 0
        self.phase_iteration = 0
        self.points_iteration = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.adaptations = 0
        self.optimizer = None
        self.lbfgs = {"scale": 1.0, "previous": None, "failures": 0, "pending": None}
        self.stop_reason: str | None = None
        self._saved_at: int | None = None
        self._evaluated_at: int | None = None  # the iteration of the latest error evaluation

    # -- optimizer -------------------------------------------------------------------------
    def _new_optimizer(self) -> None:
        phase = self.phases[self.phase_index]
        if registry.get(phase.optimizer).residuals and self.dtype != torch.float64:
            self.events.append(f"{phase.optimizer} at iteration {self.iteration}: continuing in float64")
            self._to_dtype(torch.float64)
        self.optimizer = make_optimizer(phase.optimizer, list(self.model.parameters()), phase.lr, phase.options)
        self.lbfgs.update(previous=None, pending=None, scale=None)

    def _set_lr(self) -> None:
        phase = self.phases[self.phase_index]
        if registry.get(phase.optimizer).closure or phase.lr is None:
            return
        lr = phase.lr * self.lr_decay ** (self.phase_iteration / phase.iterations)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _to_dtype(self, dtype: torch.dtype) -> None:
        self.model.to(dtype=dtype)
        self.loss.set_points({k: v.to(dtype) for k, v in self.loss.points.items()})

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "dtype": str(self.dtype).removeprefix("torch."),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "points": {k: v.detach().cpu() for k, v in self.loss.points.items()},
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "iteration": self.iteration, "phase_index": self.phase_index, "phase_iteration": self.phase_iteration,
            "points_iteration": self.points_iteration, "elapsed": self.elapsed, "adaptations": self.adaptations,
            "history": [dict(row) for row in self.history], "events": list(self.events),
            "lbfgs": dict(self.lbfgs), "divergence": self.divergence.state_dict(), "extra": self.extra,
            "weighting": None if self._weighting is None else self._weighting.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.model.parameters()).device
        dtype = getattr(torch, state["dtype"])
        self._to_dtype(dtype)
        self.model.load_state_dict(state["model"])
        self.loss.set_points({k: v.to(device=device, dtype=dtype) for k, v in state["points"].items()})
        if self.sampler is not None and state["sampler"] is not None:
            self.sampler.load_state_dict(state["sampler"])
        for key in ("iteration", "phase_index", "phase_iteration", "points_iteration", "elapsed", "adaptations"):
            setattr(self, key, state[key])
        # rows from the saved iteration on are logged again when the loop resumes
        self.history = [dict(row) for row in state["history"] if row["iteration"] < self.iteration]
        self._evaluated_at = self._last_evaluation(self.history)
        self.events = list(state["events"])
        self.optimizer = None
        if state["optimizer"] is not None and self.phase_index < len(self.phases):
            self._new_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        self.lbfgs = dict(state["lbfgs"])
        self.divergence.load_state_dict(state.get("divergence"))
        if self._weighting is not None and state.get("weighting") is not None:
            self._weighting.load_state_dict(state["weighting"])
        self._saved_at = self.iteration

    def _save(self) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.state_dict(), self.checkpoint_path)
            self._saved_at = self.iteration

    @property
    def _weighting(self):
        """The loss's adaptive weights (:mod:`pinn_lam.training.weighting`), or ``None``."""
        return getattr(self.loss, "weighting", None)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- one evaluation of the loss --------------------------------------------------------
    def _loss_and_grad(self, scale: float | None, backward: bool = True) -> tuple[Tensor, dict[str, float]]:
        """Loss terms at the current parameters, checked finite; backpropagate ``scale * loss``
        (``scale=None``: L-BFGS's scale, fixed now to ``1 / loss``)."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        total, terms = self.loss()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["loss"] = float(total.detach())
        for name in (*terms, "loss"):  # name the offending term before the total
            if not math.isfinite(values[name]):
                where = "total" if name == "loss" else f"term {name!r}"
                raise NonFiniteLossError(f"non-finite loss at iteration {self.iteration} ({self._phase_name()} "
                                         f"phase): {where} is {values[name]}; {self._last_good()}")
        if scale is None:
            scale = self.lbfgs["scale"] = 1.0 / max(values["loss"], 1e-300)
        if backward:
            (total if scale == 1.0 else total * scale).backward()  # a unit scale adds no node
            if self.data_parallel is not None:
                self.data_parallel.all_reduce_gradients(self.model)
        return total, values

    def _phase_name(self) -> str:
        return self.phases[min(self.phase_index, len(self.phases) - 1)].optimizer

    def _last_good(self) -> str:
        if self.checkpoint_path is None:
            return "no checkpoint path was given"
        if self._saved_at is None:
            return "no checkpoint was written"
        return f"last good checkpoint is iteration {self._saved_at} in {self.checkpoint_path}"

    def _check_divergence(self, values: dict[str, float]) -> None:
        """Feed the logged loss to the divergence guard; raise :class:`DivergenceError` when it says so."""
        if not self.divergence.update(self.iteration, values["loss"]):
            return
        terms = {k: v for k, v in values.items() if k != "loss"}
        largest = max(terms, key=terms.get) if terms else "loss"
        where = "total" if largest == "loss" else f"largest term {largest!r} is {values[largest]:.3e}"
        raise DivergenceError(f"diverging loss at iteration {self.iteration} ({self._phase_name()} phase): {where}; "
                              f"{self.divergence.describe(self.iteration, values['loss'])}; {self._last_good()}")

    def _log(self, values: dict[str, float], final: bool = False) -> dict[str, Any]:
        phase = self.phases[min(self.phase_index, len(self.phases) - 1)]
        row: dict[str, Any] = {"iteration": self.iteration, "phase": min(self.phase_index, len(self.phases) - 1),
                               "optimizer": phase.optimizer, "time": round(self.elapsed, 4), "loss": values["loss"]}
        row.update({f"loss_{k}": v for k, v in values.items() if k != "loss"})
        if self.evaluate is not None and (final or self._due(self.eval_every, self._evaluated_at)):
            row.update(self.evaluate(self.model))
            self._evaluated_at = self.iteration
        self.history.append(row)
        return row

    def _due(self, every: int | None, last: int | None) -> bool:
        """Whether the iteration count has reached a multiple of ``every`` since ``last``: an
        L-BFGS chunk that ends early leaves the multiples, and nothing is skipped for it."""
        return bool(every) and (last is None or self.iteration // every > last // every)

    @staticmethod
    def _last_evaluation(history: list[dict[str, Any]]) -> int | None:
        """The iteration of the latest history row holding an evaluation (keys beyond the losses)."""
        plain = {"iteration", "phase", "optimizer", "time", "loss"}
        return next((row["iteration"] for row in reversed(history)
                     if any(key not in plain and not key.startswith("loss_") for key in row)), None)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> str:
        """Train until every phase is done, the time limit is spent or the callback says stop;
        return the stop reason (also in :attr:`stop_reason`)."""
        start = time.perf_counter() - self.elapsed
        total_planned = sum(p.iterations for p in self.phases)
        last_error = next((row["rel_l2"] for row in reversed(self.history) if "rel_l2" in row), None)
        self.stop_reason = None
        while self.phase_index < len(self.phases):
            phase = self.phases[self.phase_index]
            if self.optimizer is None:
                self._new_optimizer()
            if self.phase_iteration >= phase.iterations or self._handle_lbfgs_failure():
                if self.phase_iteration >= phase.iterations:
                    self.events.append(f"{phase.optimizer}: budget spent after {self.phase_iteration} iterations")
                self.phase_index, self.phase_iteration, self.optimizer = self.phase_index + 1, 0, None
                self.lbfgs["start"] = None
                continue
            is_lbfgs = registry.get(phase.optimizer).closure
            if self.adaptive_every and self.iteration // self.adaptive_every > self.points_iteration // self.adaptive_every:
                self._adapt_points()
                if is_lbfgs:  # keep the curvature pairs (and the loss scale they are measured in)
                    self.optimizer.objective_changed()
                    self.lbfgs.update(previous=None, pending=None)
            elif (not is_lbfgs and self.resample_every and self.iteration > 0
                    and self.iteration % self.resample_every == 0 and self.points_iteration != self.iteration):
                device, dtype = self.loss.points["pde"].device, self.dtype
                new = self.sampler.sample()
                self.loss.set_points({k: torch.as_tensor(new[k], device=device, dtype=dtype) for k in self.loss.point_sets()})
                self.points_iteration = self.iteration
            kind = "fixed" if registry.get(phase.optimizer).residuals else "quasi-newton" if is_lbfgs else "first-order"
            if self._weighting is not None and self._weighting.update(self.iteration, kind):
                self.optimizer.objective_changed()  # adaptive weights changed the objective between L-BFGS chunks
                self.lbfgs.update(previous=None, pending=None)
            _, values = self._loss_and_grad(self.lbfgs["scale"] if is_lbfgs else 1.0,
                                            backward=not registry.get(phase.optimizer).residuals)
            scale = self.lbfgs["scale"] if is_lbfgs else 1.0
            if is_lbfgs and self.lbfgs["previous"] is not None and values["loss"] >= self.lbfgs["previous"]:
                self.lbfgs["pending"] = "line search failed (no decrease over a chunk)"
                continue
            if is_lbfgs and self.lbfgs.get("start") is None:
                self.lbfgs["start"] = values["loss"]
            self._check_divergence(values)
            row = self._log(values)
            last_error = row.get("rel_l2", last_error)
            if self._due(self.checkpoint_every, self._saved_at) and not self.divergence.suspicious:
                self._save()
            done = self._step(phase, scale, values)
            self.iteration += done
            self.phase_iteration += done
            self.elapsed = time.perf_counter() - start
            state = TrainState(self.iteration, phase.optimizer, self.phase_index, self.model, self.loss,
                               self.optimizer, self.elapsed, total_planned, values, last_error, self.time_limit)
            stop = self.callback is not None and bool(self.callback(state))
            number = self.stop_requested() if self.stop_requested is not None else None
            if self.data_parallel is not None:  # every rank must stop at the same iteration
                self.elapsed, stop, number = self.data_parallel.agree(self.elapsed, stop, number)
            if stop:
                self.stop_reason = "stopped by callback"
                break
            if number:
                self._interrupt(number)
            if self.time_limit is not None and self.elapsed >= self.time_limit:
                self.stop_reason = f"time limit of {self.time_limit:g} s reached"
                break
        else:
            self.stop_reason = next((e for e in reversed(self.events) if not e.startswith("stopped at")), "done")
        event = f"stopped at iteration {self.iteration}: {self.stop_reason}"
        if not self.events or self.events[-1] != event:  # resuming a finished run adds nothing
            self.events.append(event)
        _, values = self._loss_and_grad(1.0, backward=False)
        self._log(values, final=True)
        self.elapsed = time.perf_counter() - start
        self._save()
        return self.stop_reason

    def _interrupt(self, number: int) -> None:
        """Checkpoint the state after the step just taken and raise :class:`TrainingInterrupted`."""
        name = signal_name(number)
        self.events.append(f"interrupted by {name} at iteration {self.iteration}")
        self._save()
        saved = (f"checkpoint of iteration {self.iteration} in {self.checkpoint_path}"
                 if self.checkpoint_path is not None else "no checkpoint path was given")
        raise TrainingInterrupted(f"interrupted by {name} at iteration {self.iteration}; {saved}",
                                  number, self.iteration, self.checkpoint_path)

    def _adapt_points(self, batch: int = 16384) -> None:
        """Redraw the collocation points by RAD (residual-based adaptive distribution)."""
        device, dtype = self.loss.points["pde"].device, self.dtype

        def residual(candidates: np.ndarray) -> np.ndarray:
            values = []
            for start in range(0, len(candidates), batch):
                chunk = torch.as_tensor(candidates[start:start + batch], device=device, dtype=dtype)
                r = self.loss.pde_residual(chunk).detach()
                # several equations: the norm of the residual vector at each point
                values.append((r.reshape(-1) if r.shape[1] == 1 else r.norm(dim=1)).cpu().numpy())
            return np.concatenate(values)

        points = dict(self.loss.points)
        points["pde"] = torch.as_tensor(self.sampler.adaptive(residual, self.adaptive_pool), device=device, dtype=dtype)
        self.loss.set_points(points)
        self.points_iteration = self.iteration
        self.adaptations += 1

    def _step(self, phase: Phase, scale: float, values: dict[str, float]) -> int:
        info = registry.get(phase.optimizer)
        if info.residuals:
            return self._residual_step()
        if info.closure:
            return self._closure_step(phase, scale, values)
        self._set_lr()
        self.optimizer.step()
        return 1
