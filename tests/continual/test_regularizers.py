"""EWC, L2-SP and replay against closed forms, brute force and a binomial bound."""


import pytest
import torch
import torch.nn as nn

from minift.continual.regularizers import diagonal_fisher, ewc_penalty, l2sp_penalty, mix_replay


def test_ewc_penalty_and_gradient_on_two_parameters():
    theta = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    anchors, fisher = torch.tensor([0.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    penalty = ewc_penalty({"w": theta}, {"w": anchors}, {"w": fisher}, lam=2.0)
    assert penalty.item() == pytest.approx(1.5)          # (2/2)(1·1² + 2·0.5²)
    penalty.backward()
    assert theta.grad.tolist() == pytest.approx([2.0, 2.0])  # λ F (θ − θ*)
    assert ewc_penalty({"w": anchors}, {"w": anchors}, {"w": fisher}, 2.0).item() == 0.0


def test_l2sp():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert l2sp_penalty({"w": w}, {"w": torch.zeros(2, dtype=torch.float64)}, alpha=0.01).item() == pytest.approx(0.125)


def test_the_fisher_equals_brute_force_and_the_linear_gaussian_closed_form():
    """Linear model y = w·x with a unit-variance Gaussian likelihood: ∂ log p/∂w = (y − w·x) x; at y = w·x + ε the
    empirical Fisher is the mean of ((y − w·x) x)², computed here by hand per example."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False).double()
    xs = torch.randn(50, 3, dtype=torch.float64)
    ys = xs @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + torch.randn(50, dtype=torch.float64)

    def log_lik(m, ex):
        x, y = ex
        return -0.5 * (y - m(x[None])[0, 0]) ** 2

    fisher = diagonal_fisher(model, list(zip(xs, ys)), log_lik)["weight"][0]
    with torch.no_grad():
        resid = ys - (xs @ model.weight[0])
    brute = ((resid[:, None] * xs) ** 2).mean(0)
    assert torch.allclose(fisher, brute, atol=1e-12)
    assert (fisher >= 0).all()
    # a parameter that cannot change the output gets F = 0
    frozen_out = nn.Sequential(nn.Linear(3, 1, bias=False), nn.Linear(3, 1, bias=False)).double()
    fisher2 = diagonal_fisher(frozen_out, list(zip(xs, ys))[:5], lambda m, ex: -0.5 * (ex[1] - m[0](ex[0][None])[0, 0]) ** 2)
    assert torch.equal(fisher2["1.weight"], torch.zeros_like(fisher2["1.weight"]))


@pytest.mark.parametrize("p, n", [(0.0, 40), (0.05, 40), (0.25, 40), (0.3, 7), (1.0, 5)])
def test_replay_mixes_exactly_the_requested_share(p, n):
    new, old = [("new", i) for i in range(10)], [("old", i) for i in range(3)]
    mixed = mix_replay(new, old, p, n, seed=1)
    assert len(mixed) == n
    assert sum(ex[0] == "old" for ex in mixed) == round(p * n)
    # every new example is used before any is repeated: counts differ by at most one
    counts = [sum(ex == e for ex in mixed) for e in new]
    if n - round(p * n) >= len(new):
        assert max(counts) - min(counts) <= 1
    assert mixed == mix_replay(new, old, p, n, seed=1)  # seeded
    assert mixed != mix_replay(new, old, p, n, seed=2) or p in (0.0, 1.0) or n < 10


def test_replay_refuses_what_cannot_be_mixed():
    with pytest.raises(ValueError, match="pool of earlier"):
        mix_replay([1], [], 0.1, 10)
    with pytest.raises(ValueError, match="share"):
        mix_replay([1], [2], 1.5, 10)
    assert mix_replay([1], [], 0.0, 3) == [1, 1, 1]
