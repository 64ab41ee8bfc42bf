"""Heat flow in a rod with an insulated end and a convective end: Neumann and Robin conditions.

    u_t = u_xx on x in [0, 1], t in [0, 1]
    u(x, 0) = cos(k x)                                  (initial temperature)
    du/dn = 0 at x = 0                                  (insulated: Neumann)
    u + du/dn = (cos k - k sin k) exp(-k^2 t) at x = 1  (convective: Robin)

The exact solution u = exp(-k^2 t) cos(k x) gives the reference. Run: python examples/robin_heat.py
"""
import math

import torch

from pinn_lam import PDE, Box, InitialValue, Neumann, Robin, solve

K = 2.0

problem = PDE(
    domain=Box(x=(0.0, 1.0), t=(0.0, 1.0)),
    equation=lambda d: d["u_t"] - d["u_xx"],
    conditions=[
        InitialValue(lambda d: torch.cos(K * d["x"])),
        Neumann(0.0, on="x=low", name="insulated"),
        Robin(1.0, 1.0, lambda d: (math.cos(K) - K * math.sin(K)) * torch.exp(-K * K * d["t"]), on="x=high",
              name="convective"),
    ],
    exact=lambda d: torch.exp(-K * K * d["t"]) * torch.cos(K * d["x"]),
    name="robin-heat",
)


def main(**options):
    settings = dict(optimizer="lam+lbfgs", iterations=[500, 500], width=20, depth=3, n_collocation=1024, seed=0)
    result = solve(problem, **{**settings, **options})
    print(f"{problem.name}: relative L2 error {result.metrics['rel_l2']:.2e} "
          f"({result.metrics['iterations']} iterations, {result.metrics['seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    main()
