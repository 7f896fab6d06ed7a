"""GRPO / RLOO maths against hand-computed vectors: advantages, the KL estimator, the clipped surrogate, and the
per-token gradient weights of the three aggregations (not only the scalar)."""

import math

import pytest
import torch

from minift.align.grpo import aggregate, group_advantages, k3, rloo_advantages, token_losses, zero_spread

REWARDS = torch.tensor([1, 0, 0, 1, .5, .5, .5, .5, 1, 0, 0, 0], dtype=torch.float64)


def test_advantages():
    adv = group_advantages(REWARDS, 4)
    expected = [0.8658754298, -0.8658754298, -0.8658754298, 0.8658754298, 0, 0, 0, 0,
                1.49970006, -0.49990002, -0.49990002, -0.49990002]
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(group_advantages(REWARDS, 4, scale_by_std=False),
                          torch.tensor([.5, -.5, -.5, .5, 0, 0, 0, 0, .75, -.25, -.25, -.25], dtype=torch.float64))
    assert torch.allclose(rloo_advantages(REWARDS, 4), torch.tensor(
        [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0, 0, 0, 0, 1, -1 / 3, -1 / 3, -1 / 3], dtype=torch.float64))
    assert zero_spread(REWARDS, 4).tolist() == [False, True, False]
    assert not torch.isnan(group_advantages(torch.ones(4, dtype=torch.float64), 4)).any()  # equal rewards: 0, not NaN


def test_k3_vector_sign_and_unbiasedness():
    assert k3(torch.tensor(-1.0, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64)).item() == \
        pytest.approx(0.36787944117144233, abs=1e-15)
    d = torch.linspace(-5, 5, 101, dtype=torch.float64)
    assert (k3(torch.zeros_like(d), d) >= 0).all() and k3(torch.zeros(1), torch.zeros(1)).item() == 0
    # Monte Carlo: for x ~ p, E[k3] = KL(p ‖ q); p = N(0, 1), q = N(0.5, 1): KL = 0.125
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logp, logq = -0.5 * x ** 2, -0.5 * (x - 0.5) ** 2
    assert k3(logp, logq).mean().item() == pytest.approx(0.125, abs=0.003)


def test_token_loss_at_ratio_one_and_clipping():
    lp = torch.tensor([[-1.0]], dtype=torch.float64)
    loss, _ = token_losses(lp, lp, torch.tensor([0.8658754298], dtype=torch.float64), lp, beta=0.04)
    assert loss.item() == pytest.approx(-0.8658754298, abs=1e-10)  # same log-probs: k3 = 0
    loss, _ = token_losses(lp, lp, torch.tensor([0.8658754298], dtype=torch.float64), lp - 1, beta=0.04)
    assert loss.item() == pytest.approx(-0.8658754298 + 0.04 * math.exp(-1), abs=1e-10)
    up, clipped = token_losses(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.tensor([1.0]))
    assert up.item() == pytest.approx(-1.2) and clipped.item()
    down, clipped = token_losses(torch.log(torch.tensor([[0.5]])), torch.zeros(1, 1), torch.tensor([-1.0]))
    assert down.item() == pytest.approx(0.8) and clipped.item()


@pytest.mark.parametrize("mode,weights,value", [("grpo", [0.25, 0.125], 0.0), ("dapo", [1 / 6, 1 / 6], 1 / 3),
                                                ("dr_grpo", [0.125, 0.125], 0.25)])
def test_aggregation_weights(mode, weights, value):
    """Two answers of 2 and 4 tokens, Â = [+1, −1], ρ = 1, G = 2, L_max = 4: the gradient weight on each token."""
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    logp = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    loss, _ = token_losses(logp, logp.detach(), torch.tensor([1.0, -1.0], dtype=torch.float64))
    total = aggregate(loss, mask, mode, group=2, max_len=4)
    assert total.item() == pytest.approx(value, abs=1e-12)  # ≈ 0 for the paper's form while the gradient is not
    total.backward()
    g = logp.grad
    assert g[0, :2].tolist() == pytest.approx([-weights[0]] * 2) and g[1].tolist() == pytest.approx([weights[1]] * 4)
    assert g[0, 2:].tolist() == [0.0, 0.0]  # padding gets nothing
