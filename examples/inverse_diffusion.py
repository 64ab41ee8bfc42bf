"""An inverse problem: find the diffusivity kappa of u_t = kappa u_xx from noisy measurements.

    u_t = kappa u_xx on x in [0, 1], t in [0, 1], u(0, t) = u(1, t) = 0, u(x, 0) = sin(pi x),

with kappa unknown (the data come from kappa = 0.1). 300 measurements of u with 1 % noise are
the data term; kappa starts at 0.5 and is trained with the network. Run: python examples/inverse_diffusion.py
"""
import math

import numpy as np
import torch

from pinn_lam import PDE, Box, Data, Dirichlet, InitialValue, solve

TRUE_KAPPA = 0.1


def measurements(n=300, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.random((n, 2))  # (x, t) in the unit square
    u = np.exp(-TRUE_KAPPA * math.pi ** 2 * points[:, 1]) * np.sin(math.pi * points[:, 0])
    return points, u * (1 + noise * rng.standard_normal(n))


points, values = measurements()
problem = PDE(
    domain=Box(x=(0.0, 1.0), t=(0.0, 1.0)),
    equation=lambda d: d["u_t"] - d["kappa"] * d["u_xx"],
    conditions=[InitialValue(lambda d: torch.sin(math.pi * d["x"])), Dirichlet(0.0), Data(points, values)],
    unknowns={"kappa": 0.5},
    exact=lambda d: torch.exp(-TRUE_KAPPA * math.pi ** 2 * d["t"]) * torch.sin(math.pi * d["x"]),
    name="inverse-diffusion",
)


def main(**options):
    settings = dict(optimizer="lam+lbfgs", iterations=[500, 500], width=20, depth=3, n_collocation=1024, seed=0)
    result = solve(problem, **{**settings, **options})
    kappa = result.metrics["unknowns"]["kappa"]
    print(f"{problem.name}: kappa = {kappa:.5f} (true {TRUE_KAPPA}, error {abs(kappa / TRUE_KAPPA - 1):.2%}); "
          f"relative L2 error of u {result.metrics['rel_l2']:.2e}")
    return result


if __name__ == "__main__":
    main()
