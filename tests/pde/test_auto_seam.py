"""Where a periodic initial value closes its period: the first derivative that jumps, against hand values."""
import math

import numpy as np
import pytest

from pinn_lam.pde import auto_seam
from pinn_lam.pde.auto_refine import estimate


def test_two_sech_jumps_in_its_first_derivative_by_four_sech5_tanh5():
    x = np.linspace(-5.0, 5.0, 2049)
    jumps = auto_seam.derivative_jumps((2 / np.cosh(x))[:, None], 10.0)[:, 0]
    # u' = -2 sech x tanh x: u'(5) - u'(-5) = -4 sech 5 tanh 5, relative to max |u'| = 1 (at tanh^2 x = 1/2)
    assert jumps[0] < 1e-14 and jumps[2] < 1e-9
    # the grid misses the maximum of |u'| by about (h/2)^2 |u'''|/2 ~ 6e-6: rel=1e-4
    assert jumps[1] == pytest.approx(4 / math.cosh(5) * math.tanh(5), rel=1e-4)
    assert auto_seam.seam_order(lambda x: (2 / np.cosh(x))[:, None], (-5.0, 5.0)) == 2


def test_a_smooth_periodic_value_has_no_seam_and_a_ramp_jumps_in_its_value():
    assert auto_seam.seam_order(lambda x: np.cos(math.pi * x)[:, None], (0.0, 2.0)) is None
    assert auto_seam.seam_order(lambda x: x[:, None], (0.0, 1.0)) == 1


def test_the_estimate_extrapolates_with_at_most_the_rate_the_seam_allows():
    changes = [1e-2, 1e-3 / 4.8, 1e-3 / 48 / 4.8]  # ratios 48 and 48: sixth order on the coarse levels
    assert estimate(changes) == pytest.approx(changes[-1] / 47)
    assert estimate(changes, max_ratio=4.0) == pytest.approx(changes[-1] / 3)
