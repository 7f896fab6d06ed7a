"""The fine-tuning pipeline on the `quick` base: every file a run writes, every key of results.json, the numbers
reproduced from the saved files, frozen weights really frozen, strict adapter loading, exact resume."""

import json
import shutil

import pytest
import torch

import minift.finetune.run as ft
from minift.base.cache import load_base
from minift.base.pretrain import pretraining_val_loss
from minift.finetune.classify import Classifier
from minift.errors import CheckpointError, ConfigError, InputError, OutputExistsError
from minift.finetune.config import FinetuneConfig
from minift.finetune.load import evaluate_run, load_finetuned
from minift.finetune.config import FULL_FINETUNING_LR
from minift.finetune.run import build_model, finetune
from minift.peft import METHODS, apply_method, method_config, save_adapter
from minift.data.task_data import load_task_data
from minift.data.tasks import export_task
from minift.files import minift_home, torch_load

RESULT_KEYS = {
    "run", "task", "method", "base", "config", "metrics", "baselines", "forgetting", "trainable_params",
    "total_params", "trainable_pct", "weights_bytes", "adapter_bytes", "optimizer_state_bytes", "train_loss",
    "val_loss", "best_step", "steps", "train_seconds", "wall_seconds", "tokens_per_s", "peak_memory_mb",
    "mergeable", "device", "method_config", "kind", "samples", "lr"}
SMALL = dict(base="quick", max_steps=6, eval_every=3, n_train=32, n_eval=12, batch_size=8)


def run(tmp_path, name, **kw):
    cfg = FinetuneConfig(**{**SMALL, **kw})
    return finetune(cfg, tmp_path / name, progress=False), tmp_path / name


# -- the config ------------------------------------------------------------------------------------------------

def test_config_validates_and_round_trips():
    cfg = FinetuneConfig(task="qa", method="lora", method_options={"r": 4, "targets": ["attn.q"]}, max_steps=5)
    assert FinetuneConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.resolved_lr == METHODS["lora"].default_lr == 2e-3
    assert FinetuneConfig(task="qa").resolved_lr == FULL_FINETUNING_LR
    assert cfg.method_config().r == 4 and cfg.method_config().alpha == 16  # user option over the default
    for name, cls in METHODS.items():  # every method states its lr and why, and its defaults make a valid config
        assert cls.default_lr > 0 and cls.lr_reason, name
        assert cls.mergeable or cls.why_not_mergeable, name
        defaults = FinetuneConfig(task="qa", method=name).method_config()
        assert all(hasattr(defaults, k) for k in cls.key_options), name
    bad = [dict(), dict(task="qa", data="x.jsonl"), dict(task="qa", method="nope"),
           dict(task="qa", method="lora", method_options={"rank": 4}), dict(task="qa", method_options={"r": 4}),
           dict(task="qa", method="lora", freeze_until=1), dict(task="qa", epochs=1, max_steps=3),
           dict(task="qa", lr=0), dict(task="qa", batch_size=0), dict(task="qa", freeze_until=-1),
           dict(task="qa", template="vicuna"), dict(task="qa", method="loreft", train_on_prompt=True)]
    for kw in bad:
        with pytest.raises(ConfigError):
            FinetuneConfig(**kw)
    with pytest.raises(ConfigError, match="unknown FinetuneConfig fields"):
        FinetuneConfig.from_dict({"task": "qa", "rank": 4})


# -- full fine-tuning ----------------------------------------------------------------------------------------------

def test_full_sentiment_writes_every_file_and_key(quick_base, tmp_path):
    base, tok = quick_base
    r, out = run(tmp_path, "full", task="sentiment", method="full")
    for name in ("finetune.json", "results.json", "metrics.jsonl", "loss.png", "last.pt", "best.pt", "head.pt",
                 "model/config.json", "model/model.pt", "model/tokenizer.json"):
        assert (out / name).is_file(), name
    assert RESULT_KEYS <= set(r) and json.loads((out / "results.json").read_text()) == r
    test = r["metrics"]["test"]
    assert test["n"] == 12 and 0 <= test["accuracy"] <= 1 and 0 <= test["macro_f1"] <= 1
    assert {"majority", "bow_logreg_1gram"} <= set(r["baselines"])
    # the forgetting probe is the base module's own pretraining validation loss, measured independently
    assert r["forgetting"]["before_loss"] == pytest.approx(pretraining_val_loss(base, tok, "quick"), rel=1e-6)
    n_head = 2 * base.config.d_model + 2
    assert r["trainable_params"] == r["total_params"] == base.num_parameters() + n_head
    assert r["optimizer_state_bytes"] == 8 * r["trainable_params"] and r["mergeable"] is None
    assert r["steps"] == 6 and r["best_step"] in (3, 6)
    clf, _, _ = load_finetuned(out)
    assert isinstance(clf, Classifier) and clf.labels == ["negative", "positive"]
    assert not torch.equal(clf.body.blocks[0].attn.q.weight, base.blocks[0].attn.q.weight)  # it did train
    assert evaluate_run(out) == r["metrics"]


def test_full_qa_scores_test_and_heldout(tmp_path):
    r, out = run(tmp_path, "qa", task="qa", method="full")
    assert not (out / "head.pt").exists() and (out / "model" / "model.pt").is_file()
    assert set(r["metrics"]) == {"test", "heldout"}
    assert all(m["n"] == 12 and 0 <= m["exact_match"] <= 1 for m in r["metrics"].values())
    assert r["kind"] == "instruction" and r["max_new_tokens"] >= 1
    f = r["forgetting"]
    assert f["delta_loss"] == pytest.approx(f["after_loss"] - f["before_loss"])


def test_freeze_until_trains_exactly_the_last_blocks(quick_base, tmp_path):
    cfg = FinetuneConfig(**{**SMALL, "task": "sentiment", "freeze_until": 1})
    gpt, tok = load_base("quick", progress=False)
    td = load_task_data("sentiment", n_train=8)
    clf, _ = build_model(cfg, gpt, tok, td)
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    expected = {n for n, _ in clf.named_parameters() if n.startswith(("body.blocks.1.", "body.ln_f.", "head."))}
    assert trainable == expected
    # a separate head learning rate: the head's parameters, and only they, get lr_scale = head_lr / lr
    groups = ft.param_groups(FinetuneConfig(task="sentiment", lr=1e-2, head_lr=1e-3), clf)
    head = {id(p) for p in clf.head.parameters()}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in clf.parameters() if p.requires_grad)
    for g in groups:
        assert all((id(p) in head) == (g["lr_scale"] == pytest.approx(0.1)) for p in g["params"])
    with pytest.raises(ConfigError, match="only 2 blocks"):
        build_model(FinetuneConfig(task="sentiment", freeze_until=3), load_base("quick", progress=False)[0], tok, td)
    # after training, the frozen block and the (tied) embedding are bit-identical to the base
    r, out = run(tmp_path, "frozen", task="sentiment", freeze_until=1)
    base, _ = quick_base
    tuned, _, _ = load_finetuned(out)
    assert r["trainable_params"] < r["total_params"]
    assert torch.equal(tuned.body.blocks[0].mlp.fc.weight, base.blocks[0].mlp.fc.weight)
    assert torch.equal(tuned.body.tok_emb.weight, base.tok_emb.weight)
    assert not torch.equal(tuned.body.blocks[1].mlp.fc.weight, base.blocks[1].mlp.fc.weight)


# -- PEFT runs -----------------------------------------------------------------------------------------------------

def test_lora_run_small_file_frozen_base_reproducible(quick_base, tmp_path):
    base, tok = quick_base
    r, out = run(tmp_path, "lora", task="qa", method="lora", method_options={"r": 4})
    assert (out / "adapter.pt").is_file() and not (out / "model").exists()
    d, L = base.config.d_model, base.config.n_layer
    assert r["trainable_params"] == L * 2 * 4 * (d + d)  # q and v: r·(in + out) each
    base_bytes = sum(t.numel() * t.element_size() for t in base.state_dict().values())
    assert r["adapter_bytes"] < 0.1 * base_bytes and r["mergeable"] is True
    # the checkpoint holds what trained, never the frozen base (it comes back from the base) ...
    best = torch_load(out / "best.pt")
    assert set(best) == {n for n, p in load_finetuned(out)[0].named_parameters() if "lora_" in n}
    assert best["blocks.0.attn.q.lora_B"].abs().sum() > 0  # ... and the adapter moved
    model, _, cfg = load_finetuned(out)
    # the frozen base weights inside the trained model are bit-identical to the base
    assert torch.equal(model.blocks[0].attn.q.base.weight, base.blocks[0].attn.q.weight)
    assert torch.equal(model.blocks[1].mlp.fc.weight, base.blocks[1].mlp.fc.weight)
    assert torch.equal(model.blocks[0].attn.q.lora_B, best["blocks.0.attn.q.lora_B"])
    assert cfg.method == "lora" and evaluate_run(out) == r["metrics"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_and_reloads(method, tmp_path):
    """json has the longest prompts: prompt tuning must leave room for its P virtual tokens in the context."""
    r, out = run(tmp_path, method, task="json", method=method, max_steps=2, eval_every=2, n_train=8, n_eval=4)
    assert r["mergeable"] == METHODS[method].mergeable
    assert set(r["metrics"]["test"]) >= {"exact_match", "json_validity", "json_compliance"}
    assert evaluate_run(out) == r["metrics"]


def test_peft_classifier_head_is_trained_and_saved(tmp_path):
    r, out = run(tmp_path, "ia3", task="sentiment", method="ia3")
    state = torch_load(out / "adapter.pt")["state"]
    assert {"head.weight", "head.bias"} <= set(state)  # the new head travels with the adapter
    clf, _, _ = load_finetuned(out)
    assert torch.equal(clf.head.weight, state["head.weight"])
    assert evaluate_run(out) == r["metrics"]


def test_mismatched_adapter_is_rejected(tmp_path):
    _, out = run(tmp_path, "lora", task="qa", method="lora", max_steps=2, n_eval=2)
    other, _ = load_base("quick", progress=False)
    apply_method(other, method_config("lora", r=2, alpha=16))
    save_adapter(other, out / "adapter.pt")
    with pytest.raises(CheckpointError, match="another method config"):
        load_finetuned(out)
    meta = json.loads((out / "finetune.json").read_text())
    meta["base_fingerprint"] = "0" * 16
    (out / "finetune.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="has changed"):
        load_finetuned(out)


# -- output directory and resume -----------------------------------------------------------------------------------

def test_resume_continues_exactly(tmp_path, monkeypatch):
    kw = dict(task="sentiment", method="lora", max_steps=6, eval_every=3)
    whole, _ = run(tmp_path, "whole", **kw)

    calls = {"n": 0}
    real = ft.classify_loss_fn

    def crashing(model, batch):  # the 5th training micro-batch crashes; last.pt holds step 3
        if model.training:
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return real(model, batch)

    monkeypatch.setattr(ft, "classify_loss_fn", crashing)
    cfg = FinetuneConfig(**{**SMALL, **kw})
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, tmp_path / "crashed", progress=False)
    assert not (tmp_path / "crashed" / "results.json").exists()
    calls["n"] = -100  # counts again, never reaches the crash
    with pytest.raises(OutputExistsError, match="--force"):
        finetune(cfg, tmp_path / "crashed", progress=False)
    with pytest.raises(ConfigError, match="lr"):
        finetune(FinetuneConfig(**{**SMALL, **kw, "lr": 0.1}), tmp_path / "crashed", resume=True, progress=False)
    resumed = finetune(cfg, tmp_path / "crashed", resume=True, progress=False)
    assert calls["n"] == -100 + 3  # only steps 4, 5, 6 were trained again
    a, b = torch_load(tmp_path / "whole" / "adapter.pt"), torch_load(tmp_path / "crashed" / "adapter.pt")
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    assert resumed["metrics"] == whole["metrics"] and resumed["steps"] == 6
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], abs=1e-7)
    # what resume needs is the trained tensors, their AdamW moments and the RNG states, never the frozen base
    base_bytes = sum(t.numel() * t.element_size() for t in load_finetuned(tmp_path / "whole")[0].body.state_dict()
                     .values())
    assert (tmp_path / "crashed" / "last.pt").stat().st_size < 0.15 * base_bytes


# -- user data -----------------------------------------------------------------------------------------------------

def test_user_data_shape_decides_the_kind(tmp_path):
    export_task("sentiment", tmp_path / "posts.jsonl", split="test")
    r, _ = run(tmp_path, "posts", data=str(tmp_path / "posts.jsonl"), max_steps=2, n_eval=4)
    assert r["kind"] == "labelled" and r["task"] == "posts.jsonl"
    td = load_task_data(data=str(tmp_path / "posts.jsonl"))
    sizes = {k: len(v) for k, v in td.splits.items()}
    assert sizes == {"val": 20, "test": 20, "train": 160} and td.labels == ["negative", "positive"]
    texts = [{ex["text"] for ex in v} for v in td.splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])  # disjoint splits
    (tmp_path / "plain.jsonl").write_text('{"text": "just text"}\n' * 10)
    with pytest.raises(InputError, match="cannot be fine-tuned"):
        load_task_data(data=str(tmp_path / "plain.jsonl"))
    shutil.rmtree(tmp_path / "posts")


def test_the_base_side_of_the_forgetting_probe_is_measured_once_per_base(tmp_path, monkeypatch):
    """Two runs on one base: the second reads the probe's windows and L_before from the cache (keyed by the base's
    fingerprint), and gets exactly the number the first measured; a damaged cache is measured again."""
    import shutil

    from minift.finetune import forgetting as fg

    shutil.rmtree(minift_home() / "probes", ignore_errors=True)  # earlier tests measured this base already
    calls = []
    real = fg.pretraining_batches
    monkeypatch.setattr(fg, "pretraining_batches", lambda *a, **k: calls.append(a) or real(*a, **k))
    first, _ = run(tmp_path, "a", task="qa", method="lora", max_steps=2, eval_every=2)
    second, _ = run(tmp_path, "b", task="qa", method="ia3", max_steps=2, eval_every=2)
    assert len(calls) == 1  # the second run measured nothing of the base
    assert first["forgetting"]["before_loss"] == second["forgetting"]["before_loss"]
    for f in (minift_home() / "probes").glob("*.json"):
        f.write_text("{not json", encoding="utf-8")
    third, _ = run(tmp_path, "c", task="qa", method="lora", max_steps=2, eval_every=2)
    assert len(calls) == 2 and third["forgetting"]["before_loss"] == first["forgetting"]["before_loss"]


def test_n_eval_caps_validation_as_well_as_test(quick_base):
    """A real model's validation pass is not cheap: n_eval scores only the first examples of the val split too."""
    model, tok = load_base("quick")
    td = load_task_data("sentiment")
    for n_eval, want in ((5, 5), (None, len(td.splits["val"]))):
        cfg = FinetuneConfig(base="quick", task="sentiment", max_steps=1, n_eval=n_eval, batch_size=4)
        clf = Classifier(model, td.labels)
        _, _, val, _ = ft.make_batches(cfg, clf, tok, td, None)
        assert sum(b[0].size(0) for b in val) == want
