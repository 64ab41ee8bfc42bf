"""Adaptive loss weights against hand computations, and a resumed run with them bit-identical."""
import copy
import math

import pytest
import torch
from torch.func import functional_call, jacrev

from pinn_lam.nn.mlp import MLP
from pinn_lam.studies.stiffness import gradient_norms
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.loss import PINNLoss, loss_terms
from pinn_lam.training.solve import solve
from pinn_lam.training.weighting import (
    LossWeighting,
    WeightingSpec,
    balanced_weights,
    causal_weights,
    moving_average,
    ntk_trace,
    parse_weighting,
)
from problems import Convection, Heat


def small_loss(problem, n=64, seed=0, hard=False):
    """A loss of a small MLP with the same ``n`` random points for every term."""
    generator = torch.Generator().manual_seed(seed)
    model = MLP(2, 1, width=8, depth=2, bounds=problem.bounds, generator=generator,
                output_transform=problem.output_transform() if hard else None).double()
    low = torch.tensor([b[0] for b in problem.bounds], dtype=torch.float64)
    high = torch.tensor([b[1] for b in problem.bounds], dtype=torch.float64)
    points = low + (high - low) * torch.rand(n, 2, generator=generator, dtype=torch.float64)
    names = ("pde",) + tuple(t for t in loss_terms(problem, model) if t != "pde")
    return PINNLoss(problem, model, {name: points.clone() for name in names}, fast=False)


def test_grad_norm_weights_on_a_two_term_toy_loss_are_the_hand_computed_ratio():
    theta = torch.tensor([1.0, 1.0], requires_grad=True)
    terms = {"a": theta[0] ** 2, "b": 3 * theta[1] ** 2}  # gradients (2, 0) and (0, 6)
    norms = gradient_norms(terms, [theta])
    assert norms == pytest.approx({"a": 2.0, "b": 6.0})
    assert balanced_weights(norms) == pytest.approx({"a": 8 / 2, "b": 8 / 6})
    assert moving_average({"a": 1.0, "b": 1.0}, {"a": 4.0}, 0.9) == pytest.approx({"a": 1.3, "b": 1.0})


def test_grad_norm_update_of_a_pinn_loss_uses_each_terms_own_gradient_norm():
    loss = small_loss(Heat(), hard=False)
    weighting = LossWeighting("grad-norm:every=10,alpha=0.5").attach(loss)
    params = list(loss.model.parameters())
    _, terms = loss()
    norms = {}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)  # u_t - u_xx skips b_out
        norms[name] = math.sqrt(sum(float(g.square().sum()) for g in grads if g is not None))
    total = sum(norms.values())
    weighting.update(0)
    assert loss.weights == pytest.approx({k: 0.5 + 0.5 * total / v for k, v in norms.items()}, rel=1e-12)
    before = dict(loss.weights)
    weighting.update(5)  # not due again until iteration 10
    assert loss.weights == before
    assert weighting.update(12, "fixed") is False  # a least-squares phase: unchanged
    assert loss.weights == before and weighting.updated_at == 0
    assert weighting.update(13, "quasi-newton") is True  # due since 10: re-balanced, and L-BFGS is told
    assert loss.weights != before and weighting.updated_at == 13


def test_ntk_trace_of_a_tiny_network_equals_the_explicit_jacobians():
    model = MLP(2, 1, width=5, depth=2, generator=torch.Generator().manual_seed(1)).double()
    x = torch.rand(7, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    params = dict(model.named_parameters())
    jacobian = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    explicit = sum(float(j.detach().reshape(7, -1).square().sum()) for j in jacobian.values()) / 7
    assert ntk_trace(model(x), list(model.parameters())) == pytest.approx(explicit, rel=1e-12)


def test_causal_weights_are_exp_of_minus_eps_times_the_earlier_chunk_losses():
    losses = torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=torch.float64)
    expected = torch.tensor([1.0, math.exp(-0.5), math.exp(-1.5), math.exp(-1.75)], dtype=torch.float64)
    assert torch.allclose(causal_weights(losses, 0.5), expected, rtol=1e-15, atol=0)


def test_causal_loss_is_the_mean_of_weighted_chunk_losses():
    problem = Convection(beta=5.0)
    loss = small_loss(problem, n=200, hard=True)
    r = loss.residuals()["pde"][0].detach().reshape(-1)
    t = loss.points["pde"][:, 1]
    LossWeighting("causal:eps=0.3,chunks=4").attach(loss)
    chunk = torch.clamp((t * 4).floor().long(), 0, 3)
    means = torch.stack([r[chunk == i].square().mean() for i in range(4)])
    weights = torch.exp(-0.3 * torch.tensor([0.0, means[0], means[0] + means[1], means[:3].sum()]))
    total, terms = loss()
    assert float(terms["pde"].detach()) == pytest.approx(float((weights * means).mean()), rel=1e-12)
    assert float(total) == pytest.approx(float(terms["pde"] + terms["periodic_x"]), rel=1e-15)
    terms["pde"].backward()  # the weights are not differentiated: the gradient is that of the weighted sum
    g = [p.grad.clone() for p in loss.model.parameters()]
    loss.model.zero_grad()
    fields = loss.residuals()["pde"][0].reshape(-1)
    manual = sum(weights[i] * fields[chunk == i].square().mean() for i in range(4)) / 4
    manual.backward()
    for a, p in zip(g, loss.model.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-12, atol=1e-14)


def test_parse_weighting_reads_parts_and_refuses_bad_ones():
    assert parse_weighting("fixed").fixed and parse_weighting(None).fixed
    spec = parse_weighting("grad-norm:every=50+causal:eps=2,chunks=8")
    assert spec == WeightingSpec("grad-norm", every=50, causal=2.0, chunks=8)
    assert spec.label() == "grad-norm(every=50,α=0.9)+causal(ε=2,M=8)"
    for bad in ("softadapt", "grad-norm+ntk", "causal:eps=-1", "ntk:points=0", "grad-norm:alpha=1", "causal:tol=1"):
        with pytest.raises(ValueError):
            parse_weighting(bad)
    with pytest.raises(ValueError, match="time"):
        solve("poisson", weighting="causal", iterations=[1, 1], figure=False)


class Kill(Exception):
    pass


@pytest.mark.parametrize("kill_at", [14, 27])
def test_resumed_run_with_adaptive_weights_is_bit_identical(tmp_path, kill_at):
    """grad-norm every 4 iterations and causal weights, through an Adam phase and an L-BFGS
    phase (weights frozen), killed and resumed: the same weights and parameters at every step."""
    settings = dict(width=8, depth=2, n_collocation=96, n_boundary=16, eval_every=10, figure=False,
                    reference_resolution=(32, 32), dtype="float64", device="cpu", params={"modes": [[1, 1.0]]},
                    optimizer="adam+lbfgs", iterations=[20, 20], lr=1e-2, seed=1, checkpoint_every=5,
                    hard_constraints=False, weighting="grad-norm:every=4+causal:eps=0.5,chunks=4")
    seen = {"full": {}, "killed": {}, "resumed": {}}

    def record(run, kill=None):
        def callback(state):
            seen[run][state.iteration] = copy.deepcopy({"model": state.model.state_dict(),
                                                        "weights": dict(state.loss.weights)})
            if kill is not None and state.iteration >= kill:
                raise Kill()
        return callback

    full = solve("heat", output_dir=tmp_path / "full", callback=record("full"), **settings)
    with pytest.raises(Kill):
        solve("heat", output_dir=tmp_path / "killed", callback=record("killed", kill_at), **settings)
    saved = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert saved["weighting"]["updated_at"] is not None
    resumed = solve("heat", output_dir=tmp_path / "killed", resume=True, callback=record("resumed"), **settings)
    assert full.metrics["weighting"] == "grad-norm(every=4,α=0.9)+causal(ε=0.5,M=4)"
    assert set(full.metrics["loss_weights"]) == {"pde", "ic", "bc"} and full.metrics["loss_weights"]["ic"] != 1.0
    assert resumed.metrics["loss_weights"] == full.metrics["loss_weights"]
    assert list(seen["resumed"]) == [k for k in seen["full"] if k > saved["iteration"]]
    for iteration, state in seen["resumed"].items():
        assert state["weights"] == seen["full"][iteration]["weights"], iteration
        for key, value in state["model"].items():
            assert torch.equal(value, seen["full"][iteration]["model"][key]), (iteration, key)
