import math

import numpy as np
import pytest
import torch

from adamlib.checks import agree, bound, claim, glue, relative_difference, rounding_margin, within


def test_bound_is_eps_times_ops_rounded_up_to_a_power_of_ten():
    assert bound("float64", 500) == pytest.approx(1e-12)        # 1.1e-13 -> 1e-12
    assert bound("float64", 1) == pytest.approx(1e-15)          # 2.2e-16 -> 1e-15
    assert bound(torch.float32, 50) == pytest.approx(1e-5)      # 6.0e-6 -> 1e-5
    assert bound(np.float32, 1) == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="ops=0 is not accepted"):
        bound("float64", 0)
    with pytest.raises(ValueError, match="dtype='int8' is not accepted"):
        bound("int8")


def test_relative_difference_is_normwise():
    expected = np.array([1.0, 0.0, -2.0])
    assert relative_difference(expected + [0.0, 1e-10, 0.0], expected) == pytest.approx(5e-11)
    assert relative_difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 0.0
    assert relative_difference(np.ones(2), np.zeros(2)) == math.inf
    with pytest.raises(ValueError, match="shape"):
        relative_difference(np.ones(2), np.ones(3))


def test_agree_prints_the_bound_not_the_residue(capsys):
    line = agree(np.ones(4) + 3.3e-15, np.ones(4), "by hand", "adamlib", dtype="float64", ops=500)
    assert capsys.readouterr().out == line + "\n"
    assert line == "by hand agrees with adamlib to < 1e-12 relative (float64, 500 steps)"
    assert "3.3" not in line


def test_agree_fails_with_the_measured_number():
    with pytest.raises(AssertionError, match=r"differs from b by 0.001 relative, above the bound 1e-12"):
        agree(np.array([1.001]), np.array([1.0]), "a", "b", dtype="float64", ops=500)
    with pytest.raises(ValueError, match="dtype=None"):
        agree(1.0, 1.0, "a", "b")
    with pytest.raises(ValueError, match="rtol=0"):
        agree(1.0, 1.0, "a", "b", rtol=0)


def test_claim_prints_or_raises(capsys):
    assert claim(np.bool_(True), "Adam ends below Adagrad") == "check: Adam ends below Adagrad holds"
    assert capsys.readouterr().out == "check: Adam ends below Adagrad holds\n"
    with pytest.raises(AssertionError, match=r"check failed: x < 1 \(x = 2\)"):
        claim(2 < 1, "x < 1", "x = 2")


def test_within():
    assert within(31.5, 31.62, 0.01) and not within(30.0, 31.62, 0.01)


def test_rounding_margin_is_the_distance_to_the_next_flip_of_the_last_digit():
    assert rounding_margin(1.2345, 4) == pytest.approx(0.0, abs=1e-12)     # 1.2345 sits on the flip
    assert rounding_margin(1.2340, 4) == pytest.approx(0.0005 / 1.234)
    assert rounding_margin(-0.0012340, 4) == pytest.approx(0.0005 / 1.234)
    assert rounding_margin(0.0, 4) == math.inf
    with pytest.raises(ValueError, match="digits=0 is not accepted"):
        rounding_margin(1.0, 0)


def test_glue_takes_only_formatted_strings():
    with pytest.raises(TypeError, match="expected a formatted string"):
        glue("x", 0.1 + 0.2)
    glue("x", f"{0.1 + 0.2:.4g}")   # outside a kernel myst-nb's glue only displays
