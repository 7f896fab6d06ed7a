"""The preference losses against hand-computed float64 vectors, closed forms, identities and autograd."""

import math

import pytest
import torch

from minift.align.losses import (bradley_terry_loss, cdpo_loss, cpo_term, dpo_loss, hinge_loss, ipo_loss, kto_loss,
                                 log_odds, margin_h, orpo_odds_term, preference_metrics, robust_loss, simpo_loss)

LN2 = 0.6931471805599453


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_policy_equal_to_reference_gives_ln2_and_zero_rewards():
    pc, pr = t(-3.0, -7.5), t(-4.0, -2.0)
    h = margin_h(pc, pr, pc, pr)
    for loss in (dpo_loss(h), dpo_loss(h, 0.5), cdpo_loss(h, 0.1, 0.2)):
        assert torch.equal(loss, t(LN2, LN2))
    m = preference_metrics(pc, pr, pc, pr, 0.1)
    assert (m["rewards_chosen"], m["rewards_rejected"], m["margin"], m["accuracy"]) == (0.0, 0.0, 0.0, 0.0)


def test_the_dpo_family_on_one_pair():
    h = margin_h(t(-10.0), t(-12.0), t(-11.0), t(-11.0))
    assert h.item() == 2.0
    assert dpo_loss(h, 0.1).item() == pytest.approx(0.5981388693815918, abs=1e-15)
    assert dpo_loss(h, 0.5).item() == pytest.approx(0.31326168751822286, abs=1e-15)
    assert cdpo_loss(h, 0.1, 0.1).item() == pytest.approx(0.6181388693815918, abs=1e-15)
    assert robust_loss(h, 0.1, 0.1).item() == pytest.approx(0.5731388693815918, abs=1e-15)
    assert ipo_loss(h, 0.1).item() == pytest.approx(9.0, abs=1e-12)
    assert hinge_loss(h, 0.1).item() == pytest.approx(0.8, abs=1e-15)
    m = preference_metrics(t(-10.0), t(-12.0), t(-11.0), t(-11.0), 0.1)
    assert m["rewards_chosen"] == pytest.approx(0.1) and m["rewards_rejected"] == pytest.approx(-0.1)
    assert m["margin"] == pytest.approx(0.2) and m["accuracy"] == 1.0


def test_dpo_gradients_reach_the_policy_only():
    pc, pr = t(-10.0).requires_grad_(), t(-12.0).requires_grad_()
    rc, rr = t(-11.0).requires_grad_(), t(-11.0).requires_grad_()
    dpo_loss(margin_h(pc, pr, rc.detach(), rr.detach()), 0.1).sum().backward()
    assert pc.grad.item() == pytest.approx(-0.04501660026875222, abs=1e-15)
    assert pr.grad.item() == pytest.approx(0.04501660026875222, abs=1e-15)
    assert rc.grad is None and rr.grad is None
    h0 = t(0.0).requires_grad_()
    dpo_loss(h0, 0.3).backward()
    assert h0.grad.item() == pytest.approx(-0.15)  # −β/2 at h = 0


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_identities(beta):
    h = torch.linspace(-5, 5, 11, dtype=torch.float64)
    assert torch.allclose(dpo_loss(h, beta) - dpo_loss(-h, beta), -beta * h)  # L(h) − L(−h) = −βh
    hs = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    assert hs[ipo_loss(hs, beta).argmin()].item() == pytest.approx(1 / (2 * beta), abs=0.01)
    assert torch.allclose(robust_loss(h, beta, 0.0), dpo_loss(h, beta))


def test_simpo_orpo_cpo_kto_vectors():
    ac, ar = t(-0.5), t(-1.0)
    assert log_odds(ac).item() == pytest.approx(0.43275212956718856, abs=1e-15)
    assert log_odds(ar).item() == pytest.approx(-0.5413248546129181, abs=1e-15)
    assert orpo_odds_term(ac, ar).item() == pytest.approx(0.3202997852375365, abs=1e-15)
    assert simpo_loss(ac, ar, 2.5, 1.375).item() == pytest.approx(0.7575990353171691, abs=1e-15)
    assert simpo_loss(ac, ar, 2.0, 1.0).item() == pytest.approx(LN2, abs=1e-15)
    assert simpo_loss(ac, ar, 2.0, 0.0).item() == pytest.approx(0.31326168751822286, abs=1e-15)
    assert simpo_loss(ac, ac, 2.5, 1.375).item() == pytest.approx(1.600412651601648, abs=1e-15)  # softplus(γ)
    assert cpo_term(t(-3.0), t(-3.0)).item() == pytest.approx(LN2)
    good = kto_loss(t(2.0), torch.tensor([True]), 0.5, beta=0.1)
    bad = kto_loss(t(-1.0), torch.tensor([False]), 0.5, beta=0.1)
    assert good.item() == pytest.approx(0.4625701546562504, abs=1e-15)
    assert bad.item() == pytest.approx(0.4625701546562504, abs=1e-15)
    assert kto_loss(t(0.5), torch.tensor([True]), 0.5).item() == pytest.approx(0.5)


def test_kto_reference_point_carries_no_gradient():
    z0 = t(0.3).requires_grad_()
    r = t(1.0).requires_grad_()
    kto_loss(r, torch.tensor([True]), z0).sum().backward()
    assert z0.grad is None and r.grad is not None


def test_bradley_terry():
    assert bradley_terry_loss(t(2.0), t(1.0)).item() == pytest.approx(0.31326168751822286, abs=1e-15)
    assert bradley_terry_loss(t(1.5), t(1.5)).item() == pytest.approx(LN2, abs=1e-15)
    assert bradley_terry_loss(t(2.0), t(1.0), 0.5).item() == pytest.approx(0.4740769841801067, abs=1e-15)
    rc = t(2.0).requires_grad_()
    bradley_terry_loss(rc, t(1.0)).backward()
    assert rc.grad.item() == pytest.approx(-0.2689414213699951, abs=1e-15)


def test_no_underflow_far_from_zero():
    h = t(-1e4, 1e4)
    assert torch.isfinite(dpo_loss(h, 1.0)).all() and dpo_loss(h, 1.0)[0].item() == pytest.approx(1e4)
    assert math.isfinite(orpo_odds_term(t(-1e-9), t(-50.0)).item())
