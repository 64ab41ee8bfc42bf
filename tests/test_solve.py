"""End-to-end solves with small budgets, checked against the reference and the exact solution."""
import json
import math

import numpy as np
import pytest

from pinn_lam.pde.spec import PROBE_POINTS

from pinn_lam.errors import NonFiniteLossError
from pinn_lam.training.solve import solve
from problems import Heat

SMALL = dict(width=20, depth=3, n_collocation=512, n_boundary=64, optimizer="lam+lbfgs", lr=1e-2,
             eval_every=50, figure=False, device="cpu", seed=0)

# (problem, settings, bound on the relative L2 error vs the reference); bounds are about 3x
# what these settings reach (see the comments), so they fail if training breaks, not on noise
CASES = [
    ("heat", dict(iterations=[200, 300], reference_resolution=(64, 64)), 5e-2),      # reaches 1.8e-2
    ("poisson", dict(iterations=[200, 300], reference_resolution=64), 4e-2),         # reaches 1.4e-2
    ("burgers", dict(iterations=[200, 300], n_collocation=1024), 2.5e-1),            # reaches 9.2e-2
]


@pytest.mark.slow
@pytest.mark.parametrize("name, settings, bound", CASES, ids=[c[0] for c in CASES])
def test_small_solve_reaches_its_error_bound(name, settings, bound):
    result = solve(name, **{**SMALL, **settings})
    m = result.metrics
    assert m["rel_l2"] < bound, m
    assert m["iterations"] == sum(settings["iterations"])
    assert m["stop_reason"].startswith("lbfgs: budget spent")
    if name != "burgers":  # Heat and Poisson have exact solutions
        assert m["rel_l2_exact"] < bound
        assert abs(m["rel_l2_exact"] - m["rel_l2"]) < 0.1 * m["rel_l2"]
    # the error logged during training is measured on the same kind of points
    assert result.history[-1]["rel_l2"] == pytest.approx(m["rel_l2"], rel=0.3)


def test_result_predicts_and_records_history_and_outputs(tmp_path):
    result = solve("heat", iterations=[20, 10], **{**SMALL, "figure": True}, params={"modes": [[1, 1.0]]},
                   reference_resolution=(32, 32), output_dir=tmp_path, checkpoint_every=10)
    points = np.array([[0.5, 0.0], [0.25, 0.5]])
    values = result.predict(points)
    assert values.shape == (2,)
    # the hard constraint makes the initial condition exact
    assert values[0] == pytest.approx(math.sin(math.pi * 0.5), abs=1e-12)
    assert values[1] == pytest.approx(Heat(modes=((1, 1.0),)).exact_values(points)[1], abs=0.05)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.pt", "history.csv", "metrics.json", "solution.pdf", "solution.png"]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["metrics"]["rel_l2"] == result.metrics["rel_l2"] and record["config"]["width"] == 20
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["iteration", "phase", "optimizer", "time", "loss", "loss_pde"] and "rel_l2" in header
    rows = result.history
    # row i holds the loss after i steps, logged before the next step (which is L-BFGS's from 20 on)
    assert [r["optimizer"] for r in rows][:21] == ["lam"] * 20 + ["lbfgs"] and rows[-1]["optimizer"] == "lbfgs"
    assert [r["iteration"] for r in rows if "rel_l2" in r] == [0, 30]
    # the trainer's error (computed in torch where the model is) on the same points as the final
    # metrics (computed in NumPy): the 33 x 33 grid is under EVAL_POINTS, so nothing is strided out
    assert rows[-1]["rel_l2"] == pytest.approx(result.metrics["rel_l2"], rel=1e-12)


def test_soft_constraints_log_every_condition_term():
    result = solve("heat", optimizer="adam", iterations=3, hard_constraints=False, reference_resolution=(16, 16),
                   **{k: v for k, v in SMALL.items() if k not in ("optimizer",)})
    row = result.history[0]
    assert {"loss_pde", "loss_ic", "loss_bc"} <= set(row)
    # the logged terms at iteration 0, by hand from the same seeded start
    import torch

    from pinn_lam.training.solve import build

    model, _, loss = build(result.problem, result.config)
    points = {k: v.detach() for k, v in loss.points.items()}
    assert torch.all(points["ic"][:, 1] == 0) and torch.all((points["bc"][:, 0] == 0) | (points["bc"][:, 0] == 1))
    xp = points["pde"].clone().requires_grad_(True)
    u = model(xp)
    (du,) = torch.autograd.grad(u.sum(), xp, create_graph=True)
    (d2u,) = torch.autograd.grad(du[:, 0].sum(), xp)
    x0 = points["ic"][:, :1]
    with torch.no_grad():
        by_hand = {"pde": (du[:, 1] - 0.1 * d2u[:, 0]).square().mean(),
                   "ic": (model(points["ic"]) - torch.sin(math.pi * x0)
                          - 0.5 * torch.sin(4 * math.pi * x0)).square().mean(),
                   "bc": model(points["bc"]).square().mean()}
    for name, value in by_hand.items():
        assert row[f"loss_{name}"] == pytest.approx(float(value), rel=1e-12), name
    assert row["loss"] == pytest.approx(float(sum(by_hand.values())), rel=1e-12)
    assert result.history[-1]["loss"] < row["loss"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from pinn_lam.training.checkpoint import load_checkpoint

    class Exploding(Heat):
        """Heat whose residual turns NaN on the 13th evaluation at the training points (the check
        of the definition before training evaluates it on a few points of its own)."""
        calls = 0

        def pde(self, d):
            residual = super().pde(d)
            if len(d.points) > PROBE_POINTS:
                Exploding.calls += 1
            return residual * float("nan") if Exploding.calls >= 13 else residual

    with pytest.raises(NonFiniteLossError, match=r"iteration 12 \(adam phase\): term 'pde' is nan; "
                                                 r"last good checkpoint is iteration 10"):
        solve(Exploding(), optimizer="adam", iterations=50, checkpoint_every=5, output_dir=tmp_path,
              reference_resolution=(16, 16), **{k: v for k, v in SMALL.items() if k != "optimizer"})
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["iteration"] == 10
    assert all(bool(v.isfinite().all()) for v in saved["model"].values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(problem="waves"), "unknown problem 'waves'; available: allen-cahn, burgers, burgers-inverse, convection, "
                            "heat, helmholtz, poisson, poisson-lshape, schrodinger, wave"),
    (dict(optimizer="adamw"), "unknown optimizer 'adamw'"),
    (dict(iterations=0), "iterations must be positive"),
    (dict(n_collocation=-5), "n_collocation must be a positive integer"),
    (dict(width=0), "width must be a positive integer"),
    (dict(lr=0.0), "Invalid learning rate"),
    (dict(dtype="float16"), "unknown dtype 'float16'"),
    (dict(device="tpu"), "unknown device 'tpu'"),
    (dict(sampler="grid"), "unknown sampler 'grid'"),
    (dict(activation="relu6"), "unknown activation 'relu6'"),
    (dict(preset="slow"), "unknown preset 'slow'"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(params={"alpha": -1.0}), "alpha"),
    (dict(history_size=5, optimizer="lam"), "history_size are not accepted by lam"),
])
def test_bad_options_raise_value_errors_before_training(kwargs, match):
    kwargs = dict(kwargs)
    problem = kwargs.pop("problem", "heat")
    with pytest.raises(ValueError, match=match):
        solve(problem, **{**dict(SMALL, reference_resolution=(16, 16)), **kwargs})


def test_presets_layer_problem_defaults_preset_and_explicit_options():
    from pinn_lam.training import presets

    burgers = presets.resolve("burgers")
    # the full defaults are an iteration budget (reproducible on any machine); only --quick has a time limit
    assert burgers["depth"] == 5 and burgers["optimizer"] == "lam+lbfgs" and burgers["time_limit"] is None
    assert presets.resolve("burgers", "quick")["time_limit"] == 300.0  # a safety net, far above its ~45 s
    quick = presets.resolve("heat", "quick", {"width": 7, "depth": None})
    assert quick["width"] == 7 and quick["depth"] == presets.PRESETS["quick"]["depth"]
    assert quick["iterations"] == presets.PRESETS["quick"]["iterations"]
    with pytest.raises(ValueError, match="unknown preset 'fast'; available: quick"):
        presets.resolve("heat", "fast")


def test_sprint_preset_is_a_float32_iteration_budget_layered_on_each_problem():
    import problems
    from pinn_lam.training import presets
    from pinn_lam.training.setup import configure

    # an iteration budget only: a seed gives the same run on every machine
    for name in ("burgers", "heat", "poisson"):
        sprint = presets.resolve(name, "sprint")
        assert sprint["time_limit"] is None and sprint["dtype"] == "float32"
        defaults = presets.resolve(name)
        same = {k for k in defaults if k not in presets.PRESETS["sprint"]
                and k not in problems.get(name).presets.get("sprint", {})}
        assert {k: sprint[k] for k in same} == {k: defaults[k] for k in same}
    # Burgers: LAM then L-BFGS, RAD redraws at the phase boundary, and the explicit option wins
    config = configure(problems.get("burgers"), "sprint", {"n_collocation": 100})
    burgers = problems.get("burgers").presets["sprint"]
    assert config["optimizer"] == "lam+lbfgs" and config["iterations"] == burgers["iterations"]
    assert config["adaptive_every"] == config["iterations"][0] and config["n_collocation"] == 100
    assert config["dtype"] == "float32" and config["time_limit"] is None
    with pytest.raises(ValueError, match="available: quick, sprint"):
        presets.resolve("burgers", "sprnt")


def test_one_seed_drives_the_initial_weights_and_every_point():
    import problems
    import torch

    from pinn_lam.training.solve import build, configure

    problem = problems.get("heat")
    settings = dict(width=8, depth=2, n_collocation=64, n_boundary=8, device="cpu", dtype="float64", iterations=1,
                    optimizer="adam")

    def start(seed):
        config = configure(problem, None, settings)
        config.update(seed=seed, fast=None)
        model, sampler, loss = build(problem, config)
        return model.state_dict(), {k: v.clone() for k, v in loss.points.items()}, sampler.sample(), loss

    same, again, other = start(5), start(5), start(6)
    for name, weight in same[0].items():
        assert torch.equal(weight, again[0][name]), name
    assert any(not torch.equal(weight, other[0][name]) for name, weight in same[0].items() if "weight" in name)
    for k in same[1]:
        assert torch.equal(same[1][k], again[1][k]) and not torch.equal(same[1][k], other[1][k]), k
        np.testing.assert_array_equal(same[2][k], again[2][k])  # the next draw as well
        assert not np.array_equal(same[2][k], other[2][k]), k

    # solve(seed=...) trains from exactly that start: its first loss is the one of build's model
    firsts = []
    result = solve("heat", **{**SMALL, **settings, "seed": 6}, reference_resolution=(16, 16),
                   callback=lambda s: firsts.append({k: v.clone() for k, v in s.loss.points.items()}))
    for k, points in other[1].items():
        assert torch.equal(firsts[0][k], points), k
    total, _ = other[3]()
    assert result.history[0]["loss"] == float(total.detach())
