"""Chapter 15's additions to adamlib.limitations: Adam on c x^2 / 2 in logarithms (no underflow)."""
from __future__ import annotations

import numpy as np
import pytest

from adamlib import limitations as L


def test_log_run_matches_the_float64_run_before_any_underflow():
    # beta2 = 0.9: |x_t| stays far above float64's range, so both runs are the same numbers
    log_run = L.adam_on_quadratic_log(3000, alpha=0.1, beta2=0.9, c=2.0, x0=1.0)
    plain = L.adam_on_quadratic(3000, alpha=0.1, beta1=0.0, beta2=0.9, c=2.0, eps=0.0)
    assert np.all(np.abs(plain) > 1e-200)
    np.testing.assert_allclose(log_run, np.log10(np.abs(plain)), rtol=1e-9, atol=1e-9)


def test_log_run_goes_below_float64_and_comes_back_to_the_cycle():
    # the chapter's case: float64 underflows to 0; in logarithms the run returns to the 2-cycle
    plain = L.adam_on_quadratic(20_000, alpha=0.1, beta1=0.0, beta2=0.999, eps=0.0, keep=10)
    assert np.all(plain == 0)
    log_run = L.adam_on_quadratic_log(20_000, alpha=0.1, beta2=0.999)
    assert log_run.min() < -400
    assert abs(10 ** log_run[-1] - L.cycle_amplitude(0.1, 0.0)) < 0.02 * L.cycle_amplitude(0.1, 0.0)


def test_log_run_is_invariant_to_the_curvature():
    # eps = 0: the step does not depend on the scale of the gradient
    a = L.adam_on_quadratic_log(2000, alpha=0.1, beta2=0.99, c=0.01)
    b = L.adam_on_quadratic_log(2000, alpha=0.1, beta2=0.99, c=50.0)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kwargs", [dict(alpha=0.0), dict(c=-1.0), dict(x0=0.0), dict(beta2=1.0)])
def test_log_run_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        L.adam_on_quadratic_log(10, **kwargs)
