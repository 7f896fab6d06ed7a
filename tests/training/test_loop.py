"""Tests of the training loop (minift/train.py, minift/train_state.py) and device choice (minift/device.py).

Reference values: hand-computed (docs/training.md works the accumulation example with uneven token counts) and
PyTorch's own cross-entropy.
Every run uses a tiny GPT (d=32, 2 layers, vocab 64, block 16) on CPU, so the whole file takes a few seconds.
"""

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.training import checkpoints as train_state
from minift.training.device import autocast_context, describe_device, pick_device
from minift.errors import CheckpointError, ConfigError, InputError, MissingFileError
from minift.model.gpt import GPT, GPTConfig
from minift.training.optim import cosine_lr
from minift.training.batches import epoch_batches, lm_loss_fn, random_windows
from minift.training.config import TrainConfig
from minift.training.loop import accumulate_gradients, evaluate, load_best, train
from minift.files import read_jsonl, torch_load

VOCAB, BLOCK = 64, 16


def tiny_gpt(seed=0, dropout=0.0, dtype=torch.float32):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, d_model=32,
                         dropout=dropout)).to(dtype)


def quiet(**kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("progress", False)
    return TrainConfig(**kw)


class FixedLogits(nn.Module):
    """A stand-in model that returns given logits, to test the loss helper on hand-computed vectors."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x, attention_mask=None):
        return self.logits[None], None


# -- cross-entropy (hand vectors) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("logits,labels,expected", [
    ([[-1, 1], [-0.5, 1.5]], [0, 1], 1.1269280910491943),
    ([[-1, 1], [-0.5, 1.5], [-0.5, 1.5]], [0, 1, 1], 0.7935947775840759),
    ([[-1, 1], [-0.5, 1.5], [-0.5, 1.5]], [0, 1, -100], 1.1269280910491943),
    ([[2, 1, 0.1], [0.5, 2.5, 0.3]], [0, 2], 1.4185397624969482),
])
def test_lm_loss_fn_matches_note_vectors(logits, labels, expected):
    model = FixedLogits(torch.tensor(logits))
    y = torch.tensor([labels])
    loss_sum, n = lm_loss_fn(model, (torch.zeros_like(y), y))
    assert n == sum(lab != -100 for lab in labels)
    assert loss_sum.item() / n == pytest.approx(expected, abs=1e-6)


def test_lm_loss_fn_all_ignored_is_zero_not_nan():
    model = FixedLogits(torch.randn(3, 5))
    loss_sum, n = lm_loss_fn(model, (torch.zeros(1, 3, dtype=torch.long), torch.full((1, 3), -100)))
    assert n == 0 and loss_sum.item() == 0.0


# -- exact gradient accumulation (docs/training.md)----------------------------------------------------------------------

def uneven_batch(seed=1):
    """8 sequences of 6 positions whose targets are supervised on 6,1,3,6,2,5,4,1 positions (the rest −100)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (8, 6), generator=g)
    y = torch.randint(0, VOCAB, (8, 6), generator=g)
    for row, length in enumerate([6, 1, 3, 6, 2, 5, 4, 1]):
        y[row, length:] = -100
    return x, y


def grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_accumulation_equals_full_batch_token_mean_with_uneven_counts():
    x, y = uneven_batch()
    model = tiny_gpt(dtype=torch.float64)
    logits, _ = model(x)
    full = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1), ignore_index=-100)  # big-batch token mean
    full.backward()
    reference = grads(model)
    model.zero_grad(set_to_none=True)

    micro = [(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)]
    loss, n, positions = accumulate_gradients(model, lm_loss_fn, micro)
    assert positions == x.numel()  # every input position of the 4 micro-batches, padding included
    assert n == 28
    assert loss == pytest.approx(full.item(), abs=1e-12)  # the logged loss is the token mean
    assert (grads(model) - reference).abs().max().item() <= 1e-12

    # nanoGPT's mean/K: the micro-batch means are not weighted by their token counts → a different gradient
    model.zero_grad(set_to_none=True)
    for xb, yb in micro:
        logits, _ = model(xb)
        (F.cross_entropy(logits.view(-1, VOCAB), yb.view(-1), ignore_index=-100) / 4).backward()
    assert (grads(model) - reference).abs().max().item() > 1e-2  # measured 0.076 (exact path: 2.8e-16)


def test_accumulation_hand_example_logs_token_mean():
    # micro-batch 1: one token with loss 2.0; micro-batch 2: three tokens with loss 1.0 (docs/training.md)
    model = nn.Linear(1, 1, bias=False)
    nn.init.ones_(model.weight)

    def loss_fn(m, token_losses):
        return m.weight.sum() * token_losses.sum(), token_losses.numel()

    loss, n, _ = accumulate_gradients(model, loss_fn, [torch.tensor([2.0]), torch.tensor([1.0, 1.0, 1.0])])
    assert (loss, n) == (1.25, 4)  # not the mean of means 1.5
    assert model.weight.grad.item() == pytest.approx(1.25)  # d/dw of w·(2+1+1+1)/4


def test_train_step_with_accumulation_equals_one_big_batch():
    x, y = uneven_batch()
    cfg = dict(max_steps=3, lr=1e-2, eval_every=10, save_checkpoints=False)
    a, b = tiny_gpt(dtype=torch.float64), tiny_gpt(dtype=torch.float64)
    ra = train(a, lm_loss_fn, lambda i: (x[2 * (i % 4):2 * (i % 4) + 2], y[2 * (i % 4):2 * (i % 4) + 2]),
               quiet(grad_accum=4, log_every=1, **cfg))
    rb = train(b, lm_loss_fn, lambda i: (x, y), quiet(grad_accum=1, log_every=1, **cfg))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=0, atol=1e-10)
    losses = [[r["train_loss"] for r in res.history] for res in (ra, rb)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-12)
    assert ra.tokens_seen == rb.tokens_seen == 3 * 48  # input positions B·T, padding included


# -- resume, checkpoints, metrics --------------------------------------------------------------------------------

def lm_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (3000,), generator=g)
    train_batches = random_windows(tokens, BLOCK, 4, seed=seed)
    val = [train_batches(10_000 + i) for i in range(2)]
    return train_batches, val


RESUME_CFG = dict(max_steps=20, grad_accum=2, lr=1e-2, warmup_steps=3, eval_every=5, log_every=1)


def run_with_crash(out_dir, crash_at_step):
    batches, val = lm_data()

    def crashing(i):
        if i >= crash_at_step * RESUME_CFG["grad_accum"]:
            raise RuntimeError("simulated crash")
        return batches(i)

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_gpt(dropout=0.2), lm_loss_fn, crashing, quiet(**RESUME_CFG), val_batches=val, out_dir=out_dir)
    model = tiny_gpt(seed=123, dropout=0.2)  # different init: everything must come from last.pt
    return model, train(model, lm_loss_fn, batches, quiet(**RESUME_CFG), val_batches=val, out_dir=out_dir,
                        resume=True)


def curve(history):
    return [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in history]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    batches, val = lm_data()
    full_model = tiny_gpt(dropout=0.2)
    full = train(full_model, lm_loss_fn, batches, quiet(**RESUME_CFG), val_batches=val, out_dir=tmp_path / "a")

    model, resumed = run_with_crash(tmp_path / "b", crash_at_step=12)  # last.pt is from step 10
    assert resumed.steps == full.steps == 20
    assert curve(resumed.history) == curve(full.history)  # bitwise-equal losses at every step
    for p, q in zip(model.parameters(), full_model.parameters()):
        assert torch.equal(p, q)
    # metrics.jsonl: step 11, logged before the crash, was dropped and written once again
    records = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    assert curve(records) == curve(full.history)
    assert {"step", "train_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"} <= set(records[0])
    assert (tmp_path / "b" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_without_rng_restore_would_differ(tmp_path, monkeypatch):
    """Control for the test above: dropout makes the RNG state matter, so its restore is what is being tested."""
    batches, val = lm_data()
    full = train(tiny_gpt(dropout=0.2), lm_loss_fn, batches, quiet(**RESUME_CFG), val_batches=val)
    monkeypatch.setattr(train_state, "set_rng_state", lambda state: None)
    _, resumed = run_with_crash(tmp_path, crash_at_step=10)
    assert curve(resumed.history)[:12] == curve(full.history)[:12]  # steps 1-10 and val at 5, 10: from the file
    assert curve(resumed.history) != curve(full.history)


def test_checkpoint_save_load_gives_identical_logits(tmp_path):
    batches, val = lm_data()
    model = tiny_gpt()
    train(model, lm_loss_fn, batches, quiet(max_steps=6, eval_every=3, lr=1e-2), val_batches=val, out_dir=tmp_path)
    ckpt = torch_load(tmp_path / "last.pt")  # weights_only load: only tensors and plain values inside
    assert ckpt["state"]["step"] == 6 and ckpt["config"]["max_steps"] == 6
    fresh = tiny_gpt(seed=99)
    fresh.load_state_dict(ckpt["model"])
    model.eval(), fresh.eval()
    x, _ = batches(0)
    assert torch.equal(fresh(x)[0], model(x)[0])
    assert not torch.equal(tiny_gpt(seed=99).eval()(x)[0], model(x)[0])


def test_resume_refuses_mismatched_settings_and_missing_checkpoint(tmp_path):
    batches, _ = lm_data()
    with pytest.raises(MissingFileError):
        train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=2), out_dir=tmp_path, resume=True)
    train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=2), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="grad_accum"):
        train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=4, grad_accum=2), out_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="out_dir"):
        train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=2), resume=True)
    with pytest.raises(ConfigError, match="val_batches"):
        train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=2, patience=2))


# -- early stopping ---------------------------------------------------------------------------------------------

class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def test_early_stopping_keeps_best_weights(tmp_path):
    """Training pulls w towards 5; validation prefers w = 1, so validation improves, then gets worse."""
    def loss_fn(m, target):
        return (m.w - target) ** 2, 1

    model = Scalar()
    res = train(model, loss_fn, lambda i: torch.tensor(5.0), quiet(max_steps=200, lr=0.1, weight_decay=0.0,
                                                                    eval_every=1, patience=3, grad_clip=None),
                val_batches=[torch.tensor(1.0)], out_dir=tmp_path)
    vals = [r["val_loss"] for r in res.history if "val_loss" in r]
    assert res.stopped_early and res.stop_reason.startswith("early_stopping")
    assert res.steps < 200 and res.steps == res.best_step + 3
    assert res.best_val_loss == min(vals) and vals[-3:] == sorted(vals[-3:])  # the last 3 only got worse
    assert evaluate(model, loss_fn, [torch.tensor(1.0)]) > res.best_val_loss  # model keeps its last weights
    load_best(model, tmp_path)
    assert evaluate(model, loss_fn, [torch.tensor(1.0)]) == res.best_val_loss
    with pytest.raises(CheckpointError, match="does not fit"):
        load_best(tiny_gpt(), tmp_path)
    # resuming a run that stopped early does not train further
    again = train(Scalar(), loss_fn, lambda i: torch.tensor(5.0), quiet(max_steps=200, lr=0.1, weight_decay=0.0,
                  eval_every=1, patience=3, grad_clip=None), val_batches=[torch.tensor(1.0)], out_dir=tmp_path,
                  resume=True)
    assert again.steps == res.steps and again.stopped_early


def test_lr_scale_multiplies_the_schedule_per_group():
    a, b = nn.Parameter(torch.ones(())), nn.Parameter(torch.ones(()))
    model = nn.Module()
    model.a, model.b = a, b
    groups = [{"params": [a]}, {"params": [b], "lr_scale": 0.0}]
    train(model, lambda m, _: (m.a + m.b, 1), lambda i: None, quiet(max_steps=3, lr=0.1), param_groups=groups)
    assert a.item() < 0.9 and b.item() == 1.0


# -- guards ----------------------------------------------------------------------------------------------------

def test_step_without_supervised_tokens_is_skipped_not_nan():
    batches, _ = lm_data()

    def with_empty(i):
        x, y = batches(i)
        return (x, torch.full_like(y, -100)) if i == 2 else (x, y)

    model = tiny_gpt()
    with pytest.warns(UserWarning, match="step 3: nothing to learn from"):
        res = train(model, lm_loss_fn, with_empty, quiet(max_steps=5, log_every=1, lr=1e-2))
    assert res.skipped_steps == 1 and [r["step"] for r in res.history] == [1, 2, 4, 5]
    assert all(math.isfinite(r["train_loss"]) for r in res.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_loss_names_the_step():
    batches, _ = lm_data()

    def loss_fn(model, batch):
        loss, n = lm_loss_fn(model, batch)
        return (loss * float("nan"), n) if batch[0].sum() == batches(3)[0].sum() else (loss, n)

    with pytest.raises(InputError, match="step 4"):
        train(tiny_gpt(), loss_fn, batches, quiet(max_steps=6))


def test_evaluate_is_token_weighted_and_restores_mode():
    model = tiny_gpt()
    x, y = uneven_batch()
    parts = [(x[:1], y[:1]), (x[1:], y[1:])]  # 6 and 22 supervised tokens
    with torch.no_grad():
        expected = F.cross_entropy(model(x)[0].view(-1, VOCAB), y.view(-1), ignore_index=-100).item()
    model.train()
    assert evaluate(model, lm_loss_fn, parts) == pytest.approx(expected, abs=1e-6)
    assert model.training
    with pytest.raises(InputError, match="no supervised tokens"):
        evaluate(model, lm_loss_fn, [(x, torch.full_like(y, -100))])


def test_train_config_validation():
    for bad in (dict(max_steps=0), dict(max_steps=5, grad_accum=0), dict(max_steps=5, lr=0),
                dict(max_steps=5, min_lr=1.0), dict(max_steps=5, warmup_steps=6), dict(max_steps=5, patience=0),
                dict(max_steps=5, betas=(0.9, 1.0)), dict(max_steps=5, grad_clip=-1)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
    assert TrainConfig(max_steps=5, lr=1e-3).floor_lr == pytest.approx(1e-4)


# -- data helpers ------------------------------------------------------------------------------------------------

def test_random_windows_are_shifted_crops_and_pure_in_index():
    tokens = torch.arange(100)
    a, b = random_windows(tokens, 8, 5, seed=3), random_windows(tokens, 8, 5, seed=3)
    x, y = a(7)
    assert x.shape == y.shape == (5, 8)
    assert torch.equal(x + 1, y)  # with tokens = arange, the target is the next id
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(5, 7, dtype=torch.long))  # contiguous crops
    assert torch.equal(b(7)[0], x) and not torch.equal(a(8)[0], x)
    assert not torch.equal(random_windows(tokens, 8, 5, seed=4)(7)[0], x)
    with pytest.raises(InputError):
        random_windows(torch.arange(8), 8, 2, seed=0)


def test_epoch_batches_cover_each_epoch_once_and_reshuffle():
    data = list(range(10))
    batches = epoch_batches(data, 4, collate=list, seed=0)
    assert batches.batches_per_epoch == 3
    epoch0 = [batches(i) for i in range(3)]
    epoch1 = [batches(i) for i in range(3, 6)]
    assert sorted(sum(epoch0, [])) == data and sorted(sum(epoch1, [])) == data
    assert epoch0 != epoch1 and [len(b) for b in epoch0] == [4, 4, 2]
    assert epoch_batches(data, 4, collate=list, seed=0)(4) == epoch1[1]  # pure function of the index
    assert epoch_batches(data, 4, collate=list, seed=0, drop_last=True).batches_per_epoch == 2


# -- device ------------------------------------------------------------------------------------------------------

def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    assert "cpu" in describe_device(torch.device("cpu"))
    with autocast_context(torch.device("cpu")):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu")
    with pytest.raises(ConfigError, match="cuda:0|use device 'cpu'"):
        pick_device("cuda:99") if torch.cuda.is_available() else pick_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="mps"):
            pick_device("mps")


def test_metrics_records_are_json_lines(tmp_path):
    batches, val = lm_data()
    train(tiny_gpt(), lm_loss_fn, batches, quiet(max_steps=4, log_every=2, eval_every=2, lr=1e-2, warmup_steps=2),
          val_batches=val, out_dir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["step"] for s in lines] == [2, 2, 4, 4]
    # step s (1-based) trains with the schedule's value at index s − 1: step 2 is the last warmup step
    assert json.loads(lines[0])["lr"] == cosine_lr(1, 1e-2, 2, 4, 1e-3) == pytest.approx(1e-2 * 2 / 3)
    assert {"val_loss"} == set(json.loads(lines[1])) - {"step"}
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "loss.png").is_file()


def test_precision_bf16_on_a_cpu_only_where_it_pays(monkeypatch):
    from minift.training import device as dev

    cpu = torch.device("cpu")
    assert dev.resolve_precision(cpu, "auto") == "fp32" and dev.resolve_precision(cpu, "fp32") == "fp32"
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no bf16 instructions"):
        dev.resolve_precision(cpu, "bf16")
    with pytest.raises(ConfigError, match="precision"):
        dev.resolve_precision(cpu, "fp16")
    with pytest.raises(ConfigError, match="dtype"):
        TrainConfig(max_steps=1, dtype="fp16")
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)
    assert dev.resolve_precision(cpu, "bf16") == "bf16" and "bf16 autocast" in dev.describe_device(cpu, "bf16")
    with dev.autocast_context(cpu, "bf16"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16


def test_a_bf16_step_on_a_cpu_tracks_the_fp32_step(monkeypatch):
    """bf16 autocast rounds the matmuls to about 3 significant digits; the weights, gradients and AdamW state stay
    float32, so a few steps later the loss is the float32 loss to within a percent."""
    from minift.training import device as dev

    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)  # correctness only: speed needs the instructions
    losses = {}
    batches, _ = lm_data()
    for dtype in ("fp32", "bf16"):
        model = tiny_gpt()
        res = train(model, lm_loss_fn, batches, quiet(max_steps=5, lr=1e-2, dtype=dtype, log_every=1))
        losses[dtype] = res.final_train_loss
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-2)
    assert losses["bf16"] != losses["fp32"]  # it did run in bf16


def test_threads_are_set_once_and_checked():
    from minift.training.device import use_threads

    assert use_threads(None) == torch.get_num_threads()
    assert use_threads(torch.get_num_threads()) == torch.get_num_threads()  # the same count: nothing to do
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads"):
            use_threads(bad)
