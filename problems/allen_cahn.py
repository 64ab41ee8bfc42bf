r"""The Allen–Cahn equation of Raissi et al. (2019), periodic, with sharp moving interfaces.

.. math::

    u_t - \varepsilon u_{xx} + \gamma (u^3 - u) = 0, \quad x \in [-1, 1],\ t \in [0, 1], \qquad
    u(x, 0) = x^2 \cos(\pi x), \qquad u \text{ periodic in } x.

Parameters: ``epsilon`` the diffusion (> 0; the benchmark uses :math:`10^{-4}`), ``gamma`` the
reaction rate (> 0; the benchmark uses 5). The states :math:`u = \pm 1` are stable; the
interfaces between them have a width of order :math:`\sqrt{\varepsilon/\gamma}` (about 0.005).
No exact solution is known.

Reference (:meth:`AllenCahn.reference`): Fourier collocation on ``modes`` nodes of the period
(``scipy.fft``) with ETDRK4 in time (:func:`pinn_lam.pde.spectral.etdrk4`, Kassam & Trefethen
2005), the linear part :math:`-\varepsilon k^2 + \gamma` exact. The initial condition has a kink
in :math:`u_x` at the periodic end (:math:`u_x(\pm 1, 0) = \mp 2`), so the spatial error falls
only algebraically (about second order) and 4096 modes are needed for :math:`10^{-6}`. The error
estimate adds a time part (steps ``s`` against ``s/2``, Richardson with order 4) and a space
part (``modes`` against ``modes/2`` and ``modes/4``, Richardson with the observed order).
Values are stored on the published data set's grid (512 x-points of :math:`[-1, 1)` plus
:math:`x = 1`, 201 times) and interpolated by a quintic spline through 2048 x-points.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import scipy.fft as sfft
import torch
from torch import Tensor

from pinn_lam.pde import fd
from pinn_lam.pde.cache import cached_reference
from pinn_lam.pde.conditions import InitialValue, Periodic
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import HardConstraint, Problem, Reference
from pinn_lam.pde.spectral import etdrk4, wavenumbers

from problems._validate import check_positive, check_resolution, observed_order, warn_if_above

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "etdrk4-1"
#: the stored times (those of the published data set): 201 in [0, 1]
SNAPSHOTS = 200
#: x-points of the evaluation grid on [-1, 1) (those of the published data set) and of the spline
STANDARD_POINTS, SPLINE_POINTS = 512, 2048


class AllenCahn(Problem):
    """:math:`u_t = \\varepsilon u_{xx} - \\gamma(u^3 - u)` on :math:`[-1,1]\\times[0,1]`, periodic."""

    name = "allen-cahn"
    equation = "u_t - eps u_xx + gamma (u^3 - u) = 0, x in [-1,1], t in [0,1], u(x,0) = x^2 cos(pi x), periodic"
    domain = Box(x=(-1.0, 1.0), t=(0.0, 1.0))
    defaults = {"optimizer": "lam+lm", "iterations": [500, 500], "width": 20, "depth": 3, "n_collocation": 2048,
                "network": "mlp+periodic"}
    presets = {"quick": {"iterations": [300, 100]}}
    table_parameters = ({},)
    #: relative L2 error the reference promises at its default resolution
    target_error = 1e-6

    def __init__(self, epsilon: float = 1e-4, gamma: float = 5.0) -> None:
        self.epsilon = check_positive("epsilon", epsilon)
        self.gamma = check_positive("gamma", gamma)

    def parameters(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "gamma": self.gamma}

    def pde(self, d: Fields) -> Tensor:
        u = d["u"]
        return d["u_t"] - self.epsilon * d["u_xx"] + self.gamma * (u ** 3 - u)

    def initial(self, x: Tensor) -> Tensor:
        """:math:`u(x, 0) = x^2\\cos(\\pi x)` for an ``(N, 1)`` tensor ``x``."""
        return x ** 2 * torch.cos(math.pi * x)

    def conditions(self):
        return [InitialValue(lambda d: self.initial(d["x"])), Periodic("x")]

    def output_transform(self) -> HardConstraint:
        """:math:`u = x^2\\cos(\\pi x) + t\\,\\mathrm{raw}`: the ``ic`` holds exactly (periodicity is trained)."""
        return HardConstraint(offset=lambda p: self.initial(p[:, :1]), factor=lambda p: p[:, 1:2], covers=("ic",))

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """The ETDRK4 solution on ``resolution = (modes, steps)`` (Fourier nodes, a power of two
        >= 2048; time steps over [0, 1], a multiple of 400; default (4096, 800)), cached on disk."""
        modes, steps = check_resolution((4096, 800) if resolution is None else resolution, minimum=(2048, 400),
                                        from_int=lambda n: (n, 800))
        if modes & (modes - 1) or steps % (2 * SNAPSHOTS):
            raise ValueError(f"resolution (modes, steps) needs modes a power of two and steps a multiple of "
                             f"{2 * SNAPSHOTS}, got {(modes, steps)}")
        reference = cached_reference(self, [modes, steps], VERSION, lambda: self._solve(modes, steps), cache_dir,
                                     interpolator=_interpolator)
        return warn_if_above(reference, 1e-5, "thinner interfaces (smaller epsilon / gamma) need more modes: "
                             "pass resolution=(modes, steps)")

    def spectral_solution(self, modes: int, steps: int) -> np.ndarray:
        """The ETDRK4 solution at the 201 stored times on the nodes :math:`x_j = -1 + 2j/\\mathrm{modes}`:
        ``(modes, 201)`` indexed ``[x, t]``."""
        x = -1.0 + 2.0 * np.arange(modes) / modes
        linear = -self.epsilon * wavenumbers(modes, 2.0) ** 2 + self.gamma

        def nonlinear(v: np.ndarray) -> np.ndarray:
            return -self.gamma * sfft.fft(sfft.ifft(v).real ** 3)

        return etdrk4(x ** 2 * np.cos(np.pi * x), linear, nonlinear, 1.0 / steps, steps, steps // SNAPSHOTS).T

    def _solve(self, modes: int, steps: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        fine = self.spectral_solution(modes, steps)
        on = lambda u: u[::len(u) // STANDARD_POINTS]  # noqa: E731  (the 512 common nodes)
        norm = np.linalg.norm(on(fine))
        time_change = np.linalg.norm(on(fine) - on(self.spectral_solution(modes, steps // 2))) / norm
        half = on(self.spectral_solution(modes // 2, steps))
        quarter = on(self.spectral_solution(modes // 4, steps))
        space_change = np.linalg.norm(on(fine) - half) / norm
        order = observed_order(np.linalg.norm(half - quarter) / norm, space_change, cap=4.0)
        estimate = time_change / 15.0 + space_change / (2 ** order - 1)
        grid_x = np.linspace(-1.0, 1.0, STANDARD_POINTS + 1)
        # the node x = 1 repeats x = -1 (periodic)
        u = np.vstack([on(fine), on(fine)[:1]])
        spline = fine[::max(1, modes // SPLINE_POINTS)]
        arrays = {"grid_0": grid_x, "grid_1": np.linspace(0.0, 1.0, SNAPSHOTS + 1), "u": u,
                  "fine_x": np.linspace(-1.0, 1.0, len(spline) + 1), "fine_u": np.vstack([spline, spline[:1]])}
        method = f"Fourier collocation ({modes} modes) + ETDRK4 ({steps} steps), scipy.fft"
        return arrays, {"error_estimate": float(estimate), "method": method, "resolution": [modes, steps],
                        "error_kind": "Richardson: steps vs steps/2 (order 4) + modes vs modes/2 (observed order)",
                        "time_change": float(time_change), "space_change": float(space_change),
                        "space_order": order}


def _interpolator(arrays: Mapping[str, np.ndarray]):
    """A quintic tensor spline through the stored solution in :math:`(x, t)`."""
    return fd.grid_spline((arrays["fine_x"], arrays["grid_1"]), arrays["fine_u"], degree=5)
