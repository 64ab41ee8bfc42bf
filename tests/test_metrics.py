"""Error measures checked against hand computations."""
import math

import numpy as np
import pytest

from pinn_lam.metrics import max_abs_error, relative_l2_error


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
