"""Error measures checked against hand computations."""
import math

import numpy as np
import pytest

from pinn_lam.training.metrics import max_abs_error, relative_l2_error


def test_relative_l2_error_by_hand():
    # |(1,2,2) - (1,2,3)| / |(1,2,3)| = 1 / sqrt(14)
    assert relative_l2_error([1.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0 / math.sqrt(14.0), rel=1e-15)


def test_max_abs_error_by_hand():
    assert max_abs_error(np.array([[0.5], [-2.0]]), np.array([1.0, 1.0])) == 3.0


def test_identical_arrays_have_zero_error():
    values = np.linspace(-1.0, 1.0, 11)
    assert relative_l2_error(values, values) == 0.0 and max_abs_error(values, values) == 0.0


def test_errors_reject_mismatched_or_degenerate_input():
    with pytest.raises(ValueError, match="prediction has 2 values but reference has 3"):
        relative_l2_error([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="reference is zero"):
        relative_l2_error([1.0], [0.0])
    with pytest.raises(ValueError, match="zero points"):
        max_abs_error([], [])


def test_model_error_on_its_device_equals_the_numpy_error_of_its_prediction():
    import torch

    from pinn_lam.training.metrics import RelativeL2
    from pinn_lam.nn.mlp import MLP
    from pinn_lam.training.outputs import predict

    rng = np.random.default_rng(0)
    points, reference = rng.uniform(-1, 1, (500, 2)), rng.normal(size=500)
    model = MLP(2, 1, width=8, depth=2, generator=torch.Generator().manual_seed(0)).double()
    error = RelativeL2(points, reference)
    expected = relative_l2_error(predict(model, points), reference)
    assert error(model) == pytest.approx(expected, rel=1e-13)
    # the trainer may switch the model to another dtype: the cached points follow it
    assert error(model.float()) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="reference is zero"):
        RelativeL2(points, np.zeros(500))
    with pytest.raises(ValueError, match=r"points must be \(N, d\) with N = 3"):
        RelativeL2(points, np.ones(3))


def test_norms_avoid_numpy_blas(monkeypatch):
    """OpenBLAS's threads spin after a threaded call and take the cores from PyTorch's threads
    during the next training steps, so the error measures make no BLAS call."""
    def refuse(*args, **kwargs):
        raise AssertionError("a BLAS call")

    monkeypatch.setattr(np.linalg, "norm", refuse)
    monkeypatch.setattr(np, "dot", refuse)
    values = np.linspace(0.0, 1.0, 100_001)
    assert relative_l2_error(2 * values, values) == pytest.approx(1.0, rel=1e-14)
