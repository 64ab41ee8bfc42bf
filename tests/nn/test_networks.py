"""Embeddings, the modified MLP and RWF: exact periodicity, the function against hand-built
formulas at fixed weights, and fast-path derivatives against nested autograd in float64."""
import math

import pytest
import torch

from pinn_lam.nn import fastpath
from pinn_lam.nn.mlp import MLP
from pinn_lam.nn.networks import FeatureNetwork, NetworkSpec, parse_network
from pinn_lam.pde.operators import derivatives as autograd_derivatives
from pinn_lam.pde.problem import HardConstraint

VARIABLES = ("x", "t")
BOUNDS = ((0.0, 2 * math.pi), (0.0, 1.0))
PERIODS = {0: 2 * math.pi}
CONSTRAINT = HardConstraint(offset=lambda p: torch.sin(p[:, :1]), factor=lambda p: p[:, 1:2] * torch.cos(p[:, :1]),
                            covers=("ic",))
SPECS = ["mlp+fourier:2", "mlp+periodic", "mlp+periodic+fourier:1", "modified-mlp", "modified-mlp+periodic+fourier:1",
         "mlp+rwf:0.5,0.2", "modified-mlp+periodic+rwf"]


def network(spec, transform=None, seed=0, width=10, depth=3):
    generator = torch.Generator().manual_seed(seed)
    model = FeatureNetwork(2, 1, width=width, depth=depth, bounds=BOUNDS, spec=spec, periods=PERIODS,
                           output_transform=transform, generator=generator).double()
    with torch.no_grad():  # non-zero biases, so every term of the rules is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


def points(n=30, seed=1):
    unit = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return unit * torch.tensor([2 * math.pi, 1.0], dtype=torch.float64)


@pytest.mark.parametrize("spec", ["mlp+periodic", "modified-mlp+periodic+fourier:3+rwf"])
def test_periodic_embedding_makes_the_output_periodic_to_round_off(spec):
    model, x = network(spec), points()
    shifted = x + torch.tensor([2 * math.pi, 0.0], dtype=torch.float64)
    x.requires_grad_(True)
    shifted.requires_grad_(True)
    u, v = model(x), model(shifted)
    assert torch.allclose(u, v, rtol=0, atol=1e-13)
    # so are its derivatives: the loss's periodic condition has nothing left to enforce
    du = torch.autograd.grad(u.sum(), x)[0][:, 0]
    dv = torch.autograd.grad(v.sum(), shifted)[0][:, 0]
    assert torch.allclose(du, dv, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("transform", [None, CONSTRAINT], ids=["raw", "hard"])
def test_fast_path_derivatives_and_parameter_gradients_match_nested_autograd(spec, transform):
    model, x = network(spec, transform), points()
    keys = ("t", "x", "xx", "tt")
    xg = x.clone().requires_grad_(True)
    u_ref = model(xg)
    d_ref = autograd_derivatives(u_ref, xg, VARIABLES, keys)
    u, d = fastpath.derivatives(model, x, VARIABLES, keys)
    assert torch.allclose(u, u_ref, rtol=0, atol=1e-12)
    for key in keys:
        assert torch.allclose(d[key], d_ref[key], rtol=1e-10, atol=1e-10), key

    def scalar(u, d):
        return (u ** 2).sum() + sum((k + 1) * (v * u).sum() + v.pow(2).sum() for k, v in enumerate(d.values()))

    params = list(model.parameters())
    g_ref = torch.autograd.grad(scalar(u_ref, d_ref), params)
    g = torch.autograd.grad(scalar(u, d), params)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)


def test_plain_feature_network_is_the_mlp():
    mlp = MLP(2, 1, width=8, depth=3, bounds=BOUNDS, generator=torch.Generator().manual_seed(3)).double()
    net = FeatureNetwork(2, 1, width=8, depth=3, bounds=BOUNDS, generator=torch.Generator().manual_seed(3)).double()
    x = points()
    # the MLP's input scaling is computed in float32 (its buffers are made before .double())
    assert torch.allclose(mlp(x), net(x), rtol=0, atol=1e-6)
    mlp.input_scale.copy_(net.input_scale)
    mlp.input_shift.copy_(net.input_shift)
    assert torch.allclose(mlp(x), net(x), rtol=0, atol=1e-14)


def test_modified_mlp_is_the_hand_built_gated_network():
    model, x = network("modified-mlp+periodic"), points()
    layers, (enc_u, enc_v) = model.layers, model.encoders
    e = torch.cat([2 * x[:, 1:] - 1, torch.cos(x[:, :1]), torch.sin(x[:, :1])], dim=1)
    u = torch.tanh(e @ enc_u.weight.T + enc_u.bias)
    v = torch.tanh(e @ enc_v.weight.T + enc_v.bias)
    h = e
    for layer in layers[:-1]:
        z = torch.tanh(h @ layer.weight.T + layer.bias)
        h = (1 - z) * u + z * v
    expected = h @ layers[-1].weight.T + layers[-1].bias
    assert torch.allclose(model(x), expected, rtol=0, atol=1e-14)


def test_fourier_features_are_cos_and_sin_of_the_scaled_inputs_times_b():
    model, x = network("mlp+fourier:2"), points()
    b = model.fourier.frequencies
    assert b.shape == (2, 5)
    assert abs(float(b.std()) - 2.0) < 1.5  # drawn with sigma = 2 (10 draws)
    z = x * torch.tensor([1 / math.pi, 2.0], dtype=torch.float64) - 1
    e = torch.cat([torch.cos(z @ b), torch.sin(z @ b)], dim=1)
    h = e
    for layer in model.layers[:-1]:
        h = torch.tanh(h @ layer.weight.T + layer.bias)
    expected = h @ model.layers[-1].weight.T + model.layers[-1].bias
    assert torch.allclose(model(x), expected, rtol=0, atol=1e-14)


def test_rwf_weight_is_exp_s_times_v_and_starts_at_the_xavier_draw():
    generator = torch.Generator().manual_seed(5)
    net = FeatureNetwork(2, 1, width=6, depth=2, bounds=BOUNDS, spec="mlp+rwf:1,0.1", generator=generator)
    plain = FeatureNetwork(2, 1, width=6, depth=2, bounds=BOUNDS, generator=torch.Generator().manual_seed(5))
    first = net.layers[0]
    assert torch.allclose(first.weight, torch.exp(first.log_scale)[:, None] * first.direction)
    # the first layer's Xavier draw comes before any scale is drawn
    assert torch.allclose(first.weight, plain.layers[0].weight, rtol=1e-6, atol=0)
    assert 0.5 < float(first.log_scale.mean()) < 1.5


def test_parse_network_reads_parts_and_refuses_unknown_ones():
    assert parse_network(None).plain
    spec = parse_network("modified-mlp+periodic+fourier:1+rwf")
    assert spec == NetworkSpec("modified-mlp", True, 1.0, (1.0, 0.1))
    assert spec.label() == "modified-mlp+periodic+fourier(σ=1)+rwf(μ=1,σ=0.1)"
    for bad in ("resnet", "mlp+fourier:-1", "mlp+rwf:1", "mlp+periodic+periodic", "mlp+fourier:x"):
        with pytest.raises(ValueError):
            parse_network(bad)


def test_rwf_network_is_the_hand_built_mlp_with_factorized_weights():
    model, x = network("mlp+rwf:0.5,0.2"), points()
    h = x * torch.tensor([1 / math.pi, 2.0], dtype=torch.float64) - 1
    for layer in model.layers[:-1]:
        h = torch.tanh(h @ (torch.exp(layer.log_scale)[:, None] * layer.direction).T + layer.bias)
    last = model.layers[-1]
    expected = h @ (torch.exp(last.log_scale)[:, None] * last.direction).T + last.bias
    assert torch.allclose(model(x), expected, rtol=0, atol=1e-14)
    assert {name.split(".")[-1] for name, _ in model.named_parameters()} == {"log_scale", "direction", "bias"}
