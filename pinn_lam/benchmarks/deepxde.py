"""DeepXDE beside pinn-lam in one process: its import, its own device, its Burgers model and its
published Burgers recipe, for ``pinn-lam bench train`` (DeepXDE is optional: ``pip install 'pinn-lam[bench]'``)."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: DeepXDE's Burgers example: hidden layers, points per kind
WIDTH, DEPTH = 20, 3
N_DOMAIN, N_BOUNDARY, N_INITIAL = 2540, 80, 160
#: the default device DeepXDE's import chose (filled on the first import by :func:`import_deepxde`)
_DEEPXDE_DEVICE: list[torch.device] = []


def import_deepxde(importer: Callable[[], Any] | None = None) -> tuple[Any, torch.device]:
    """DeepXDE's module and the device it runs on, with torch's global default device put back.

    DeepXDE's PyTorch backend calls ``torch.set_default_device("cuda")`` on import when a GPU is
    present. Left in place, that would make every later pinn-lam tensor default to CUDA (a seeded
    CPU generator then fails) and run every torch call of pinn-lam's cases through the device
    mode's Python hook. So the default found before the import is restored here (as torch
    reports it: a default of ``"cuda"`` comes back as ``"cuda:0"``), also when the import fails,
    and DeepXDE's own work runs inside :func:`deepxde_scope`, which gives it what its import set.
    If DeepXDE was imported before the first call, its device is taken to be the default then."""
    if importer is None:
        def importer() -> Any:
            import deepxde

            return deepxde

    before = _default_device()
    try:
        module = importer()
        if not _DEEPXDE_DEVICE:
            _DEEPXDE_DEVICE.append(_default_device())
    finally:  # also when the import fails half-way (its backend set the device, a dependency is missing)
        if _default_device() != before:
            torch.set_default_device(None if before.type == "cpu" else before)
    return module, _DEEPXDE_DEVICE[0]


def _default_device() -> torch.device:
    """``torch.get_default_device()``, which some torch versions cannot answer once
    ``torch.set_default_device(None)`` has cleared the default: then it is the CPU."""
    try:
        return torch.get_default_device()
    except AttributeError:
        return torch.device("cpu")


def deepxde_scope(device: torch.device) -> Any:
    """A context with DeepXDE's default device; none on the CPU (where DeepXDE sets none)."""
    return contextlib.nullcontext() if device.type == "cpu" else torch.device(device)


def same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are the same device here (``torch.device`` compares them unequal)."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def deepxde_model(nu: float, seed: int | None = None) -> Any:
    """DeepXDE's ``examples/pinn_forward/Burgers.py`` model, compiled with Adam at 1e-3, or ``None``;
    with ``seed``, its points and initial weights come from ``dde.config.set_random_seed(seed)``.
    Built on DeepXDE's own device (:func:`import_deepxde`), which ``model.pinn_lam_device`` holds."""
    backend = os.environ.setdefault("DDE_BACKEND", "pytorch")
    if backend != "pytorch":
        print(f"DeepXDE skipped: DDE_BACKEND={backend!r}, the comparison needs 'pytorch'")
        return None
    try:
        dde, device = import_deepxde()
    except ImportError:
        print("DeepXDE is not installed (pip install 'pinn-lam[bench]'); timing pinn-lam only")
        return None
    with deepxde_scope(device):
        model = _deepxde_burgers(dde, nu, seed)
    model.pinn_lam_device = device
    return model


def _deepxde_burgers(dde: Any, nu: float, seed: int | None) -> Any:
    if seed is not None:
        dde.config.set_random_seed(seed)
    geometry = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 0.99))

    def pde(x, y):
        dy_x = dde.grad.jacobian(y, x, i=0, j=0)
        dy_t = dde.grad.jacobian(y, x, i=0, j=1)
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        return dy_t + y * dy_x - nu * dy_xx

    bc = dde.icbc.DirichletBC(geometry, lambda x: 0, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geometry, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geometry, pde, [bc, ic], num_domain=N_DOMAIN, num_boundary=N_BOUNDARY,
                            num_initial=N_INITIAL)
    model = dde.Model(data, dde.nn.FNN([2] + [WIDTH] * DEPTH + [1], "tanh", "Glorot normal"))
    model.compile("adam", lr=1e-3)
    return model



def deepxde_time_to_accuracy(problem, targets: list[float], *, time_limit: float, eval_every: int = 250,
                             seed: int | None = None) -> dict[str, Any]:
    """DeepXDE's recipe (Adam 15000 steps at 1e-3, then L-BFGS) until every target is reached."""
    model = deepxde_model(problem.nu, seed)
    if model is None:
        return {}
    from pinn_lam.training.metrics import relative_l2_error

    dde, _ = import_deepxde()

    reference = problem.reference()
    grid, values = reference.points(), np.asarray(reference.u, dtype=np.float64).reshape(-1)
    reached: dict[str, float | None] = {f"{t:g}": None for t in targets}
    clock = {"start": time.perf_counter(), "excluded": 0.0, "epoch": 0, "last": None}

    class Measure(dde.callbacks.Callback):
        def on_epoch_end(self) -> None:
            clock["epoch"] += 1
            if clock["epoch"] % eval_every and self.model.opt_name == "adam":
                return
            begin = time.perf_counter()
            # pinn-lam's BLAS-free measure: NumPy's norm would wake OpenBLAS's threads, whose spinning
            # afterwards slows DeepXDE's next steps on a machine with few cores
            error = relative_l2_error(self.model.predict(grid), values)
            end = time.perf_counter()
            clock["excluded"] += end - begin
            elapsed = begin - clock["start"] - (clock["excluded"] - (end - begin))
            clock["last"] = error
            for t in targets:
                if error <= t and reached[f"{t:g}"] is None:
                    reached[f"{t:g}"] = round(elapsed, 2)
            if all(v is not None for v in reached.values()) or elapsed > time_limit:
                self.model.stop_training = True

    with deepxde_scope(model.pinn_lam_device):
        model.train(iterations=15000, display_every=1000, verbose=0, callbacks=[Measure()])
        if not model.stop_training:
            model.compile("L-BFGS")
            model.train(display_every=1000, verbose=0, callbacks=[Measure()])
    seconds = time.perf_counter() - clock["start"] - clock["excluded"]
    # DeepXDE's own count of training steps (Adam steps plus L-BFGS iterations) shows where it stopped
    return {"seconds_to": reached, "final_rel_l2": clock["last"], "seconds": round(seconds, 2),
            "deepxde_steps": int(model.train_state.step), "seed": seed}
