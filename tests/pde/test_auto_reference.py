"""Automatic references against exact solutions, the hand-written references and an independent
spectral solver; problems outside the supported classes are refused in one line."""
import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import problems
from pinn_lam import PDE, Box, Dirichlet, Disk, InitialValue, Neumann, Periodic, PointReference, Reference
from pinn_lam.errors import ProblemError
from pinn_lam.pde.auto_reference import auto_reference, unsupported_reason
from pinn_lam.pde.conditions import InitialRate
from pinn_lam.training.evaluation import no_reference

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def exact_at(problem, reference):
    points = reference.points()
    return problem.exact_values(points).reshape(np.asarray(reference.values()).shape)


def test_heat_agrees_with_its_exact_solution_and_hand_written_reference(tmp_path):
    heat = problems.get("heat")
    ref = auto_reference(heat, cache_dir=tmp_path)
    assert isinstance(ref, Reference) and ref.info["stopped"] == "met the target" and ref.error_estimate <= 1e-5
    assert relative(ref.values(), exact_at(heat, ref)) < 1e-5
    hand = heat.reference(64, cache_dir=tmp_path)  # 2nd order, error ~1e-3: the auto one is far closer to exact
    assert relative(ref(hand.points()), hand.values()) == pytest.approx(hand.error_estimate, rel=0.05)


def test_burgers_smooth_case_agrees_with_cole_hopf(tmp_path):
    burgers = problems.get("burgers", nu=0.1 / math.pi)
    ref = auto_reference(burgers, cache_dir=tmp_path)
    assert relative(ref.values(), exact_at(burgers, ref)) < 1e-5


def test_a_second_call_loads_from_the_cache_and_other_conditions_do_not(tmp_path):
    def problem(k):
        return PDE(Box(x=(0.0, 1.0), t=(0.0, 0.2)), lambda d: d["u_t"] - d["u_xx"],
                   [InitialValue(lambda d: torch.sin(k * math.pi * d["x"])), Dirichlet(0.0)], name="rod")

    first = auto_reference(problem(1), target=1e-4, cache_dir=tmp_path)
    again = auto_reference(problem(1), target=1e-4, cache_dir=tmp_path)
    other = auto_reference(problem(2), target=1e-4, cache_dir=tmp_path)
    assert not first.info["cached"] and again.info["cached"] and not other.info["cached"]
    x, t = np.meshgrid(*other.grid, indexing="ij")
    assert np.abs(other.u - np.exp(-4 * math.pi ** 2 * t) * np.sin(2 * math.pi * x)).max() < 1e-5


DELTA = 0.022


def kdv_spectral(n, times):
    """Zabusky-Kruskal KdV by Fourier collocation with an integrating factor (DOP853)."""
    x = 2.0 * np.arange(n) / n
    k = 2 * np.pi * np.fft.rfftfreq(n, d=2.0 / n)
    linear = 1j * DELTA ** 2 * k ** 3

    def rhs(t, y):
        v = y[:len(k)] + 1j * y[len(k):]
        u = np.fft.irfft(np.exp(linear * t) * v, n)
        dv = np.exp(-linear * t) * (-0.5j * k * np.fft.rfft(u * u))
        return np.r_[dv.real, dv.imag]

    v0 = np.fft.rfft(np.cos(np.pi * x))
    sol = solve_ivp(rhs, (0.0, times[-1]), np.r_[v0.real, v0.imag], t_eval=times, method="DOP853",
                    rtol=1e-11, atol=1e-12)
    v = sol.y[:len(k)] + 1j * sol.y[len(k):]
    return x, np.stack([np.fft.irfft(np.exp(linear * t) * v[:, j], n) for j, t in enumerate(times)], axis=1)


def test_a_users_kdv_equation_agrees_with_a_spectral_solution(tmp_path):
    kdv = PDE(Box(x=(0.0, 2.0), t=(0.0, 0.3)),
              lambda d: d["u_t"] + d["u"] * d["u_x"] + DELTA ** 2 * d["u_xxx"],
              [InitialValue(lambda d: torch.cos(math.pi * d["x"])), Periodic("x")], name="kdv")
    ref = auto_reference(kdv, target=1e-4, cache_dir=tmp_path)
    times = np.linspace(0.0, 0.3, 7)
    x, u = kdv_spectral(256, times)
    points = np.stack(np.meshgrid(x, times, indexing="ij"), axis=-1).reshape(-1, 2)
    assert relative(ref(points), u.ravel()) < 1e-4


def test_a_periodic_system_of_two_outputs_agrees_with_its_exact_solution(tmp_path):
    problem = PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0)),
                  lambda d: {"real": d["u_t"] + d["v_xx"], "imaginary": d["v_t"] - d["u_xx"]},
                  [InitialValue(lambda d: torch.cat([torch.cos(d["x"]), torch.sin(d["x"])], dim=1), output=("u", "v")),
                   Periodic("x")], outputs=("u", "v"),
                  exact=lambda d: (torch.cos(d["x"] - d["t"]), torch.sin(d["x"] - d["t"])))
    ref = auto_reference(problem, target=1e-6, cache_dir=tmp_path)
    assert ref.u.shape[-1] == 2 and relative(ref.values(), exact_at(problem, ref)) < 1e-6


def test_neumann_and_robin_ends_agree_with_the_exact_solution(tmp_path):
    problem = load_example("robin_heat").problem
    ref = auto_reference(problem, cache_dir=tmp_path)
    assert relative(ref.values(), exact_at(problem, ref)) < 1e-5


def test_a_wave_equation_is_solved_as_a_first_order_system(tmp_path):
    c = 0.5
    wave = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_tt"] - c ** 2 * d["u_xx"],
               [InitialValue(lambda d: torch.sin(math.pi * d["x"])), InitialRate(0.0), Dirichlet(0.0)],
               exact=lambda d: torch.cos(math.pi * c * d["t"]) * torch.sin(math.pi * d["x"]))
    ref = auto_reference(wave, cache_dir=tmp_path)
    assert relative(ref.values(), exact_at(wave, ref)) < 1e-5


def test_the_benchmark_wave_with_a_fast_high_mode_stays_bounded_and_meets_its_target(tmp_path):
    # c = 2 and sin(4 pi x): with shifted one-sided end rows this grew without bound (an error of 2e5)
    wave = problems.get("wave")
    ref = auto_reference(wave, cache_dir=tmp_path)
    assert relative(ref.values(), exact_at(wave, ref)) < 1e-5
    assert ref.error_estimate < 1e-5


def test_the_estimate_trusts_a_geometric_tail_only_once_two_ratios_agree():
    from pinn_lam.pde.auto_refine import estimate

    assert estimate([1e-2, 1e-4, 1e-6]) == pytest.approx(1e-6 / 99)      # ratios 100 and 100
    assert estimate([1.2e-3, 3.8e-4, 3.8e-5]) == 3.8e-5                  # ratios 3.2 then 10: still speeding up
    assert estimate([1e-3, 4e-4]) == pytest.approx(4e-4 / 1.5)           # ratio 2.5 from two changes: trusted
    assert estimate([1e-3, 2.5e-4]) == pytest.approx(2.5e-4 / 3)
    assert estimate([1e-3, 8e-4]) == 8e-4                                # ratio below 2: the change itself


def test_the_time_interpolation_error_matches_a_quintic_splines_error():
    from scipy.interpolate import make_interp_spline

    from pinn_lam.pde.auto_reference import _time_interpolation_error

    t = np.linspace(0.0, 1.0, 101)
    u = np.sin(40.0 * t)[None, :, None] * np.ones((3, 1, 1))
    estimate = _time_interpolation_error(t, u)
    fine = np.linspace(0.0, 1.0, 2001)
    actual = np.linalg.norm(make_interp_spline(t, u[0, :, 0], k=5)(fine) - np.sin(40.0 * fine)) / np.linalg.norm(
        np.sin(40.0 * fine))
    assert actual / 4 < estimate < 4 * actual
    assert _time_interpolation_error(t, np.ones((3, 101, 1)) * t[None, :, None]) < 1e-14   # a line is exact


def test_poisson_on_the_square_agrees_with_its_exact_solution(tmp_path):
    poisson = problems.get("poisson")
    ref = auto_reference(poisson, cache_dir=tmp_path)
    assert isinstance(ref, Reference) and relative(ref.values(), exact_at(poisson, ref)) < 1e-5


L_SHAPE = Box(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Box(x=(0.0, 1.0), y=(0.0, 1.0))


def test_an_l_shape_with_a_smooth_solution_agrees_with_it(tmp_path):
    problem = PDE(L_SHAPE, lambda d: d["u_xx"] + d["u_yy"] - 2 * math.pi ** 2 * d["u"]
                  + 4 * math.pi ** 2 * torch.sin(math.pi * d["x"]) * torch.sin(math.pi * d["y"]), [Dirichlet(0.0)],
                  exact=lambda d: torch.sin(math.pi * d["x"]) * torch.sin(math.pi * d["y"]))
    ref = auto_reference(problem, cache_dir=tmp_path)
    assert isinstance(ref, PointReference)
    assert relative(ref.values(), problem.exact_values(ref.points())) < 1e-5


def test_the_singular_l_shape_is_extrapolated_in_its_corners_exponents(tmp_path):
    problem = PDE(L_SHAPE, lambda d: d["u_xx"] + d["u_yy"] + 1.0, [Dirichlet(0.0)], name="l-shape")
    ref = auto_reference(problem, target=1e-4, cache_dir=tmp_path)
    changes = ref.info["raw_changes"]
    assert ref.error_estimate <= 1e-4 and ref.info["stopped"] == "met the target"
    assert "extrapolated in h^(1.333) and h^(2)" in ref.method and ref.info["corner_exponent"] == pytest.approx(2 / 3)
    # the corner singularity r^(2/3) limits the raw L2 convergence to order 4/3: each halving of h divides by 2^(4/3)
    assert all(b / a == pytest.approx(2 ** (-4 / 3), abs=0.08) for a, b in itertools.pairwise(changes))
    # maximum principle: between the torsion maxima of the unit square inside (0.0737) and the square of side 2 around
    assert 0.0737 < ref.values().max() < 4 * 0.0737


def test_a_nonlinear_steady_problem_is_solved_by_newton_iterations(tmp_path):
    def exact(d):
        return torch.sin(math.pi * d["x"]) * torch.sin(math.pi * d["y"]) + d["x"] * d["y"]

    def equation(d):
        source = 2 * math.pi ** 2 * torch.sin(math.pi * d["x"]) * torch.sin(math.pi * d["y"]) + exact(d) ** 3
        return -(d["u_xx"] + d["u_yy"]) + d["u"] ** 3 - source

    problem = PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)), equation, [Dirichlet(lambda d: d["x"] * d["y"])], exact=exact)
    ref = auto_reference(problem, cache_dir=tmp_path)
    assert relative(ref.values(), exact_at(problem, ref)) < 1e-5


def test_a_steady_problem_without_a_solution_is_refused_in_one_line(tmp_path):
    # Bratu's problem on the unit square has no solution for lambda above about 6.8
    bratu = PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)), lambda d: d["u_xx"] + d["u_yy"] + 10.0 * torch.exp(d["u"]),
                [Dirichlet(0.0)], name="bratu")
    with pytest.raises(ProblemError, match="Newton's method did not converge") as caught:
        auto_reference(bratu, cache_dir=tmp_path)
    assert "\n" not in str(caught.value)


REFUSED = [
    (PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] ** 2 - d["u_xx"],
         [InitialValue(0.0), Dirichlet(0.0)]), "not affine in u_t"),
    (PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0), z=(0.0, 1.0)), lambda d: d["u_xx"] + 1.0, [Dirichlet(0.0)]),
     "3 space dimensions"),
    (PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)) - Disk((0.5, 0.5), 0.2), lambda d: d["u_xx"] + 1.0, [Dirichlet(0.0)]),
     "grid lines"),
    (PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] - d["k"] * d["u_xx"],
         [InitialValue(0.0), Dirichlet(0.0)], unknowns={"k": 1.0}), "inverse problem"),
    (PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] + d["u_xxx"], [InitialValue(0.0), Dirichlet(0.0)]),
     "needs Periodic"),
    (PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] - d["u_xx"], [InitialValue(0.0),
                                                                        Dirichlet(0.0, on="x=low")]),
     "exactly one at each end"),
    (PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)), lambda d: d["u_xx"] + d["u_yy"] + 1.0, [Neumann(0.0)]),
     "Dirichlet conditions only"),
]


@pytest.mark.parametrize("problem, reason", REFUSED, ids=[r for _, r in REFUSED])
def test_problems_outside_the_supported_classes_are_refused_in_one_line(problem, reason):
    with pytest.raises(ProblemError, match=reason) as caught:
        auto_reference(problem)
    assert "\n" not in str(caught.value)
    assert reason in unsupported_reason(problem) and problem.reference() is None
    assert reason in no_reference(problem)


def test_reference_auto_and_the_default_give_the_automatic_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path))
    def equation(d):
        return d["u_t"] - 0.1 * d["u_xx"]

    conditions = [InitialValue(lambda d: torch.sin(math.pi * d["x"])), Dirichlet(0.0)]
    chosen = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), equation, conditions, reference="auto").reference()
    default = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), equation, conditions).reference()
    assert chosen.method.startswith("automatic") and default.method == chosen.method
    x, t = np.meshgrid(*chosen.grid, indexing="ij")
    assert np.abs(chosen.u - np.exp(-0.1 * math.pi ** 2 * t) * np.sin(math.pi * x)).max() < 1e-5
    with pytest.raises(ProblemError, match="grid lines"):
        PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)) - Disk((0.5, 0.5), 0.2), lambda d: d["u_xx"] + 1.0, [Dirichlet(0.0)],
            reference="auto").reference()
