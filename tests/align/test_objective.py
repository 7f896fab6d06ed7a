"""Sequence log-probs, pairs as batches, the reference model and the preference objective on a real model."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import base_model

from minift.align.logprobs import model_logps, sequence_logps, split_pair
from minift.align.objective import PreferenceConfig, Reference, disable_dropout, pair_loss_fn, precompute_reference
from minift.align.pairs import collate_pairs, encode_pairs
from minift.model.gpt import IGNORE_INDEX
from minift.peft import apply_method, method_config
from minift.training.loop import accumulate_gradients

LN2 = 0.6931471805599453


def test_the_sequence_log_prob_vector():
    """logits randn(1, 5, 7) (seed 0, float64), ids [3, 1, 4, 1, 5], the first two tokens the prompt: −4.83554…"""
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7, dtype=torch.float64)
    targets = torch.tensor([[IGNORE_INDEX, 4, 1, 5]])  # minift's shifted layout: the target of input t
    assert sequence_logps(logits[:, :4], targets).item() == pytest.approx(-4.835540124323133, abs=1e-12)
    ce = F.cross_entropy(logits[0, :4], targets[0], ignore_index=IGNORE_INDEX, reduction="sum")
    assert sequence_logps(logits[:, :4], targets).item() == pytest.approx(-ce.item(), abs=1e-12)
    assert sequence_logps(logits[:, :4], targets, average=True).item() == pytest.approx(-ce.item() / 3, abs=1e-12)


def tiny(dtype=torch.float64):
    return base_model().to(dtype)


def batch_of(pairs=((5, 6, 7), (9, 10, 11, 12))):
    """Two hand-made pairs as a right-padded stacked batch: prompt ids, then the answer."""
    rows, tg = [], []
    for prompt_len, *answer in [(3, 20, 21), (2, 30)] + [(3, 22), (2, 31, 32, 33)]:
        ids = list(range(1, prompt_len + 1)) + answer
        rows.append(ids[:-1])
        tg.append([IGNORE_INDEX] * (prompt_len - 1) + answer)
    t = max(map(len, rows))
    ids = torch.tensor([r + [0] * (t - len(r)) for r in rows])
    targets = torch.tensor([g + [IGNORE_INDEX] * (t - len(g)) for g in tg])
    mask = (torch.arange(t)[None] < torch.tensor([len(r) for r in rows])[:, None]).long()
    return {"ids": ids, "targets": targets, "mask": mask}


def test_gathered_log_probs_equal_the_full_computation_and_ignore_the_prompt():
    model, b = tiny(), batch_of()
    lp, n = model_logps(model, b["ids"], b["targets"], b["mask"])
    full = sequence_logps(model(b["ids"], attention_mask=b["mask"])[0], b["targets"])
    assert torch.allclose(lp, full, atol=1e-12) and n.tolist() == [2, 1, 1, 3]
    # response-only: a different prompt token changes the log-probs only through the context, and a prompt token's
    # own probability never enters (scoring it as a target would change the sum)
    t2 = b["targets"].clone()
    t2[0, 0] = 5  # now the first prompt target is scored too
    assert not torch.allclose(model_logps(model, b["ids"], t2, b["mask"])[0], lp)


def test_step_zero_dpo_is_ln2_exactly_and_metrics_are_zero():
    model = apply_method(tiny(), method_config("lora", r=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.0)  # B = 0: the policy is the reference
    cfg = PreferenceConfig("dpo")
    loss, n = pair_loss_fn(cfg, Reference(model))(model, batch_of())
    assert loss.item() / n.item() == LN2
    m = cfg.metrics[-1]
    assert m["margin"] == 0.0 and m["accuracy"] == 0.0 and m["rewards_chosen"] == 0.0


def test_the_reference_is_the_base_with_the_adapter_really_off():
    base = tiny()
    policy = apply_method(copy.deepcopy(base), method_config("lora", r=4))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: the policy now differs from the base
    b = batch_of()
    ref = Reference(policy).logps(b["ids"], b["targets"], b["mask"])
    assert torch.equal(ref, model_logps(base, b["ids"], b["targets"], b["mask"])[0])
    assert not torch.allclose(model_logps(policy, b["ids"], b["targets"], b["mask"])[0], ref)
    with pytest.raises(Exception, match="frozen copy"):
        Reference(base)


def test_dropout_is_switched_off():
    from dataclasses import replace

    from helpers import CFG
    model = base_model(cfg=replace(CFG, dropout=0.3)).to(torch.float64)
    model.train()
    b = batch_of()
    noisy = [model_logps(model, b["ids"], b["targets"], b["mask"])[0] for _ in range(2)]
    assert not torch.equal(*noisy)  # the check below can fail: dropout is really on here
    disable_dropout(model)
    assert torch.equal(model_logps(model, b["ids"], b["targets"], b["mask"])[0],
                       model_logps(model, b["ids"], b["targets"], b["mask"])[0])


@pytest.mark.parametrize("method", ["dpo", "ipo", "simpo", "orpo", "cpo", "hinge", "cdpo"])
def test_accumulation_over_micro_batches_is_exact(method):
    """Two micro-batches of one pair give the gradient of the two-pair batch (the loop divides by the pair count)."""
    b = batch_of()
    halves = [{k: torch.cat([split_pair(v)[0][i:i + 1], split_pair(v)[1][i:i + 1]]) for k, v in b.items()}
              for i in range(2)]
    grads = []
    for micro in ([b], halves):
        model = apply_method(tiny(), method_config("lora", r=4))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        params = [p for p in model.parameters() if p.requires_grad]
        accumulate_gradients(model, pair_loss_fn(PreferenceConfig(method), Reference(model)), micro, None, params)
        grads.append(torch.cat([p.grad.flatten() for p in params]))
    assert torch.allclose(grads[0], grads[1], atol=1e-7, rtol=1e-5)  # the adapter is float32


def test_precomputed_reference_gives_the_same_loss(chat_tok):
    from minift.finetune.templates import get_template
    model = apply_method(tiny(torch.float32), method_config("lora", r=4))
    pairs = [{"prompt": "a b", "chosen": "c", "rejected": "d e"}, {"prompt": "f", "chosen": "g h", "rejected": "i"}]
    tok = chat_tok
    enc, stats = encode_pairs(tok, pairs, get_template("plain"), max_len=16)
    assert stats["n_kept"] == 2
    collate = collate_pairs(tok.pad_id)
    # the tiny model's vocabulary is 64: keep ids inside it
    for e in enc:
        for side in ("chosen", "rejected"):
            e[side]["input_ids"] = [i % 64 for i in e[side]["input_ids"]]
            e[side]["labels"] = [i % 64 if i != IGNORE_INDEX else i for i in e[side]["labels"]]
    cfg = PreferenceConfig("dpo")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    on_the_fly = pair_loss_fn(cfg, Reference(model))(model, collate(enc))[0]
    precompute_reference(enc, collate, Reference(model))
    batch = collate(enc)
    assert batch["ref"].shape == (2, 2)
    assert torch.allclose(pair_loss_fn(cfg, None)(model, batch)[0], on_the_fly, atol=1e-5)


# -- the reward model -------------------------------------------------------------------------------------------

def test_the_reward_model_reads_the_last_real_token_with_either_padding():
    from minift.align.reward import RewardModel, pad_rows
    rm = RewardModel(tiny()).double().eval()
    rows = [[5, 6, 7, 8, 9], [10, 11, 12]]
    alone = torch.stack([rm(torch.tensor([r]))[0] for r in rows])
    for left in (False, True):
        ids, mask = pad_rows(rows, pad_id=0, left=left)
        assert torch.allclose(rm(ids, mask), alone, atol=1e-12)
    ids, mask = pad_rows(rows, pad_id=0)
    wide = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)  # extra right padding changes nothing
    assert torch.allclose(rm(wide, torch.cat([mask, torch.zeros_like(wide[:, :3])], 1)), alone, atol=1e-12)


def test_the_reward_model_learns_a_preference_and_its_loss_starts_at_ln2_for_equal_rewards():
    from minift.align.reward import RewardModel, collate_reward_pairs, reward_loss_fn, score_pairs
    torch.manual_seed(0)
    rm = RewardModel(tiny(torch.float32))
    with torch.no_grad():
        rm.head.weight.zero_()
    pairs = [{"chosen": [1, 2, 3, 40], "rejected": [1, 2, 3, 50]}, {"chosen": [7, 8, 40], "rejected": [7, 8, 50]}]
    batch = collate_reward_pairs(0)(pairs)
    loss, n = reward_loss_fn()(rm, batch)
    assert loss.item() / n.item() == pytest.approx(LN2, abs=1e-7)
    assert score_pairs(rm, pairs, 0)["accuracy"] == 0.0  # ties are not wins
    opt = torch.optim.Adam(rm.parameters(), lr=1e-2)
    for _ in range(30):
        loss, n = reward_loss_fn()(rm, batch)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    s = score_pairs(rm, pairs, 0)
    assert s["accuracy"] == 1.0 and s["margin"] > 0
