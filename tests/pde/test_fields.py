"""Named fields against hand-computed derivatives, and the names they refuse."""
import pytest
import torch

from pinn_lam.errors import ProblemError
from pinn_lam.pde.fields import AutogradFields, RecordingFields, TensorFields, check_names, derivative_keys


def values_of(points):
    """u = x^3 t^2, v = sin(x) + t: every derivative below is written out by hand."""
    x, t = points[:, :1], points[:, 1:2]
    return torch.cat([x ** 3 * t ** 2, torch.sin(x) + t], dim=1)


def test_autograd_fields_give_coordinates_outputs_and_mixed_derivatives():
    points = torch.tensor([[0.5, 2.0], [-1.0, 0.25]], dtype=torch.float64, requires_grad=True)
    d = AutogradFields(points, values_of(points), ("x", "t"), ("u", "v"), {"k": torch.tensor(3.0)})
    x, t = points[:, :1].detach(), points[:, 1:2].detach()
    expected = {"x": x, "t": t, "u": x ** 3 * t ** 2, "v": torch.sin(x) + t,
                "u_x": 3 * x ** 2 * t ** 2, "u_xx": 6 * x * t ** 2, "u_xt": 6 * x ** 2 * t, "u_tx": 6 * x ** 2 * t,
                "u_xxx": 6 * t ** 2, "u_t": 2 * x ** 3 * t, "v_x": torch.cos(x), "v_t": torch.ones_like(t),
                "v_xx": -torch.sin(x)}
    for key, value in expected.items():
        torch.testing.assert_close(d[key].detach(), value, rtol=1e-12, atol=1e-12, msg=key)
    assert d["k"].item() == 3.0 and d["k"].dim() == 0


def test_tensor_fields_take_columns_of_the_fast_path_layout():
    points = torch.zeros(3, 2)
    values = torch.arange(6.0).reshape(3, 2)
    d = TensorFields(points, values, {"x": 10 + values, "xx": 20 + values}, ("x", "t"), ("u", "v"))
    assert torch.equal(d["v"], values[:, 1:2]) and torch.equal(d["u_xx"], 20 + values[:, :1])
    with pytest.raises(KeyError, match="u_t was not computed; computed: x, xx"):
        d["u_t"]


@pytest.mark.parametrize("key, message", [
    ("w", "unknown name 'w': variables are x, t; outputs are u"),
    ("u_y", "unknown name 'u_y'"),
    ("xx", "derivatives are written output_variables such as 'u_xx'"),
])
def test_unknown_names_say_what_there_is(key, message):
    points = torch.zeros(2, 2, requires_grad=True)
    d = AutogradFields(points, points[:, :1] * 2, ("x", "t"), ("u",))
    with pytest.raises(KeyError, match=message):
        d[key]


def test_recording_fields_record_reads_and_derivative_keys_are_directions():
    points = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    d = RecordingFields(points, values_of(points), ("x", "t"), ("u", "v"))
    d["u_t"], d["v"], d["u_xx"], d["x"]
    assert d.read == ["u_t", "v", "u_xx", "x"]
    assert derivative_keys(d.read, ("x", "t"), ("u", "v")) == ("t", "xx")


@pytest.mark.parametrize("variables, outputs, unknowns, message", [
    (("x", "xy"), ("u",), (), "variables must be single letters"),
    (("x",), ("u_1",), (), "outputs must be names"),
    (("x", "t"), ("u", "t"), (), "the names t are used twice"),
    (("x",), ("u",), ("u",), "the names u are used twice"),
])
def test_bad_names_are_refused_in_one_line(variables, outputs, unknowns, message):
    with pytest.raises(ProblemError, match=message):
        check_names(variables, outputs, unknowns)
