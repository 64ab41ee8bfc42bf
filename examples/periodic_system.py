"""A system of two equations with periodic conditions: the free Schrödinger equation
i h_t + h_xx = 0 written for the real and imaginary parts of h = u + i v,

    u_t + v_xx = 0,   v_t - u_xx = 0   on x in [0, 2 pi], t in [0, 1],
    h(x, 0) = exp(i x),   h periodic in x (values and first derivatives).

The exact solution h = exp(i (x - t)) gives the reference. Run: python examples/periodic_system.py
"""
import math

import torch

from pinn_lam import PDE, Box, InitialValue, Periodic, solve

problem = PDE(
    domain=Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)),
    outputs=("u", "v"),
    equation=lambda d: {"real": d["u_t"] + d["v_xx"], "imaginary": d["v_t"] - d["u_xx"]},
    conditions=[
        InitialValue(lambda d: torch.cat([torch.cos(d["x"]), torch.sin(d["x"])], dim=1), output=("u", "v")),
        Periodic("x"),
    ],
    exact=lambda d: (torch.cos(d["x"] - d["t"]), torch.sin(d["x"] - d["t"])),
    name="schrodinger-free",
)


def main(**options):
    settings = dict(optimizer="lam+lbfgs", iterations=[500, 700], width=24, depth=3, n_collocation=1024, seed=0)
    result = solve(problem, **{**settings, **options})
    m = result.metrics
    print(f"{problem.name}: relative L2 error {m['rel_l2']:.2e} (u {m['rel_l2_u']:.2e}, v {m['rel_l2_v']:.2e}; "
          f"{m['iterations']} iterations, {m['seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    main()
