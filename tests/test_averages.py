"""adamlib.averages: exponentially weighted averages and bias correction."""
import numpy as np
import pytest
import torch

from adamlib import Adam, Momentum
from adamlib import averages as A


def test_slide_v3_and_recursion():
    beta, th = 0.9, np.array([3.0, -1.0, 2.0])
    v = A.ewa(th, beta)
    assert v[0] == pytest.approx((1 - beta) * th[0])
    assert v[2] == pytest.approx(beta**2 * (1 - beta) * th[0] + beta * (1 - beta) * th[1] + (1 - beta) * th[2])
    np.testing.assert_allclose(v[2], A.ewa_weights(3, beta) @ th)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999])
def test_weights_sum_and_constant_signal(beta):
    for t in (1, 2, 10, 100):
        assert A.ewa_weights(t, beta).sum() == pytest.approx(1 - beta**t, rel=1e-12)
        assert A.ewa_weights(t, beta, bias_correction=True).sum() == pytest.approx(1.0, rel=1e-12)
        assert A.bias_factor(t, beta) == pytest.approx(1 - beta**t)
    c = np.full(50, 2.5)
    np.testing.assert_allclose(A.ewa(c, beta, bias_correction=True), c, rtol=1e-12)
    np.testing.assert_allclose(A.ewa(c, beta), 2.5 * (1 - beta ** np.arange(1, 51)), rtol=1e-12)


def test_beta_zero_is_identity_and_vectors():
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.testing.assert_allclose(A.ewa(x, 0.0), x)
    np.testing.assert_allclose(A.ewa(x, 0.8)[:, 1], A.ewa(x[:, 1], 0.8))
    np.testing.assert_allclose(A.ewa(torch.as_tensor(x), 0.8), A.ewa(x, 0.8))


def test_optimizer_states_are_ewas():
    gs = torch.randn(30, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    adam, p2 = None, torch.zeros(4, dtype=torch.float64, requires_grad=True)
    adam = Adam([p], betas=(0.9, 0.99))
    mom = Momentum([p2], beta=0.8)
    for g in gs:
        p.grad, p2.grad = g.clone(), g.clone()
        adam.step()
        mom.step()
    np.testing.assert_allclose(adam.state[p]["exp_avg"].numpy(), A.ewa(gs, 0.9)[-1], rtol=1e-12)
    np.testing.assert_allclose(adam.state[p]["exp_avg_sq"].numpy(), A.ewa(gs**2, 0.99)[-1], rtol=1e-12)
    np.testing.assert_allclose(mom.state[p2]["exp_avg"].numpy(), A.ewa(gs, 0.8)[-1], rtol=1e-12)


def test_window_and_steps_to_unbiased():
    assert A.effective_window(0.9) == pytest.approx(10)
    assert A.steps_to_unbiased(0.9) == 44
    assert A.steps_to_unbiased(0.999) == 4603
    assert A.steps_to_unbiased(0.0) == 1
    for beta in (0.5, 0.9, 0.98):
        t = A.steps_to_unbiased(beta, 0.05)
        assert beta**t <= 0.05 < beta ** (t - 1)


@pytest.mark.parametrize("call, name", [
    (lambda: A.ewa([1.0], 1.0), "beta"),
    (lambda: A.ewa([1.0], -0.1), "beta"),
    (lambda: A.ewa([1.0], "a"), "beta"),
    (lambda: A.ewa([1.0], True), "beta"),
    (lambda: A.ewa([1.0], 0.9, bias_correction=1), "bias_correction"),
    (lambda: A.ewa(1.0, 0.9), "theta"),
    (lambda: A.ewa_weights(0, 0.9), "t"),
    (lambda: A.steps_to_unbiased(0.9, tol=1.5), "tol"),
    (lambda: A.effective_window(1), "beta"),
])
def test_errors(call, name):
    with pytest.raises(ValueError, match=rf"^{name}"):
        call()
