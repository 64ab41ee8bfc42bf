"""The MLP: inputs scaled to [-1, 1] by the domain's bounds, the layers by hand, initialisation, bad arguments."""
import math

import pytest
import torch

from pinn_lam.nn.mlp import MLP


def test_inputs_are_scaled_affinely_from_the_bounds_to_minus_one_one():
    model = MLP(3, width=4, depth=1, bounds=((-1.0, 1.0), (0.0, 1.0), (2.0, 6.0))).double()
    # z = 2 (x - lo) / (hi - lo) - 1 = scale x + shift
    assert model.input_scale.tolist() == [1.0, 2.0, 0.5]
    assert model.input_shift.tolist() == [0.0, -1.0, -2.0]
    corners = torch.tensor([[-1.0, 0.0, 2.0], [1.0, 1.0, 6.0], [0.0, 0.5, 4.0], [0.5, 0.25, 3.0]], dtype=torch.float64)
    expected = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, -0.5, -0.5]],
                            dtype=torch.float64)
    assert torch.equal(model.scale_inputs(corners), expected)
    unscaled = MLP(2, width=4, depth=1)
    assert unscaled.input_scale.tolist() == [1.0, 1.0] and unscaled.input_shift.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("activation, sigma", [("tanh", torch.tanh), ("sin", torch.sin)])
def test_forward_is_the_layers_applied_by_hand_to_the_scaled_inputs(activation, sigma):
    generator = torch.Generator().manual_seed(0)
    transform = lambda p, raw: p[:, 1:2] * raw + 3.0  # noqa: E731 - sees the unscaled points
    model = MLP(2, 1, width=5, depth=2, activation=activation, bounds=((0.0, 2.0), (-3.0, 1.0)),
                output_transform=transform, generator=generator).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64))
    x = torch.tensor([[0.0, -3.0], [2.0, 1.0], [0.5, -0.5]], dtype=torch.float64)
    z = torch.stack([x[:, 0] - 1.0, (x[:, 1] + 1.0) / 2.0], dim=1)
    (w1, b1), (w2, b2), (w3, b3) = [(layer.weight.detach(), layer.bias.detach()) for layer in model.layers]
    raw = sigma(sigma(z @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
    torch.testing.assert_close(model.raw(x), raw, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(model(x), x[:, 1:2] * raw + 3.0, rtol=1e-14, atol=1e-14)


def test_initialisation_is_seeded_xavier_normal_with_zero_biases():
    a = MLP(2, width=256, depth=2, generator=torch.Generator().manual_seed(1))
    b = MLP(2, width=256, depth=2, generator=torch.Generator().manual_seed(1))
    c = MLP(2, width=256, depth=2, generator=torch.Generator().manual_seed(2))
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), name
        if name.endswith("bias"):
            assert not p.any(), name
        else:
            assert not torch.equal(p, r), name
    hidden = a.layers[1].weight.detach()  # 65536 draws: the sample std is within 2% of sqrt(2 / (256 + 256))
    assert float(hidden.std()) == pytest.approx(math.sqrt(2 / 512), rel=0.02)


@pytest.mark.parametrize("kwargs, message", [
    (dict(bounds=((0.0, 1.0), (1.0, 1.0))), r"bounds must give low < high for each of 2 inputs"),
    (dict(bounds=((0.0, 1.0), (2.0, -1.0))), r"bounds must give low < high"),
    (dict(bounds=((0.0, 1.0),)), r"bounds must give low < high for each of 2 inputs, got \(\(0.0, 1.0\),\)"),
    (dict(width=0), "width must be a positive integer, got 0"),
    (dict(depth=2.0), "depth must be a positive integer, got 2.0"),
    (dict(activation="relu"), "unknown activation 'relu'; choose one of tanh, sin, sigmoid"),
])
def test_bad_arguments_raise_one_line_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(2, **kwargs)
