"""The shared PEFT machinery: freezing, counting, switching off, strict adapter files, the method registry."""

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import torch.nn as nn

from helpers import CFG, base_model, ids
from minift.errors import CheckpointError, ConfigError, MissingFileError
from minift.model.gpt import GPT, GPTConfig
from minift.peft import (
    METHODS, MethodConfig, PeftModule, adapter_state_dict, apply_method, count_parameters, disabled, load_adapter,
    merge, merge_qlora, method_config, register, save_adapter, trainable_parameters, unmerge,
)
from minift.peft.core import name_matches, layer_index, replace_module


def randomise_adapter(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in trainable_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def n_base(cfg):
    """docs/peft.md: N_base = L(12d² + 13d) + Vd + Td + 2d."""
    d, L = cfg.d_model, cfg.n_layer
    return L * (12 * d * d + 13 * d) + cfg.vocab_size * d + cfg.block_size * d + 2 * d


def test_base_count_closed_form():
    assert count_parameters(base_model())["total"] == n_base(CFG)


def test_apply_freezes_base_and_trains_only_adapter():
    model = apply_method(base_model(), method_config("lora", r=4))
    names = [n for n, _ in trainable_parameters(model)]
    assert names and all(n.rsplit(".", 1)[-1] in ("lora_A", "lora_B") for n in names)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all("lora_" not in n for n in frozen)
    assert model.peft_config.method == "lora"


@pytest.mark.parametrize("targets, per_layer", [(["attn.q", "attn.v"], 4), ("all-linear", 18),
                                                (["attn.q", "attn.k", "attn.v", "attn.o"], 8)])
@pytest.mark.parametrize("r", [1, 4])
def test_count_matches_closed_form(targets, per_layer, r):
    d, L = CFG.d_model, CFG.n_layer
    model = apply_method(base_model(), method_config("lora", r=r, targets=targets))
    c = count_parameters(model)
    assert c["trainable"] == per_layer * L * r * d  # docs/peft.md: 4Lrd, 8Lrd, 18Lrd
    assert c["total"] == n_base(CFG) + c["trainable"]
    assert c["fraction"] == pytest.approx(c["trainable"] / c["total"])


def test_disabled_gives_base_logits_and_restores_flags():
    model = base_model()
    x = ids()
    base_logits = model(x)[0]
    apply_method(model, method_config("lora", r=4, targets="all-linear"))
    randomise_adapter(model)
    adapted = model(x)[0]
    assert not torch.allclose(adapted, base_logits)
    mods = [m for m in model.modules() if isinstance(m, PeftModule)]
    mods[0].disabled = True  # a flag set before must survive the block
    with disabled(model):
        assert all(m.disabled for m in mods)
        assert torch.equal(model(x)[0], base_logits)
    assert mods[0].disabled and not any(m.disabled for m in mods[1:])
    mods[0].disabled = False
    assert torch.equal(model(x)[0], adapted)
    merge(model)
    with pytest.raises(ConfigError, match="unmerge"):
        with disabled(model):
            pass


def test_save_load_roundtrip_identical_logits(tmp_path):
    model = apply_method(base_model(), method_config("lora", r=4, targets="all-linear", bias="all"))
    randomise_adapter(model)
    x = ids()
    want = model(x)[0]
    path = tmp_path / "adapter.pt"
    save_adapter(model, path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "minift-adapter" and payload["version"] == 1
    assert payload["method"]["method"] == "lora" and payload["base"] == CFG.to_dict()
    assert set(payload["state"]) == {n for n, _ in trainable_parameters(model)}
    assert any(k.endswith("ln1.bias") for k in payload["state"])  # bias "all" trains LayerNorm biases too
    fresh = load_adapter(base_model(), path)
    assert torch.equal(fresh(x)[0], want)
    # loading into a model that already has the same method applied also works
    same = apply_method(base_model(), method_config("lora", r=4, targets="all-linear", bias="all"))
    assert torch.equal(load_adapter(same, path)(x)[0], want)


def _saved(tmp_path):
    model = apply_method(base_model(), method_config("lora", r=4))
    path = tmp_path / "a.pt"
    save_adapter(model, path)
    return path, torch.load(path, weights_only=True)


def test_load_rejects_other_base_config(tmp_path):
    path, _ = _saved(tmp_path)
    other = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=3, n_head=2, d_model=32))
    with pytest.raises(CheckpointError, match="n_layer"):
        load_adapter(other, path)


def test_load_rejects_missing_unexpected_and_wrong_shape(tmp_path):
    path, payload = _saved(tmp_path)
    key = "blocks.1.attn.v.lora_B"
    cases = {
        "missing": (lambda s: s.pop(key), f"missing keys.*{key}"),
        "unexpected": (lambda s: s.__setitem__("blocks.0.attn.k.lora_A", torch.zeros(4, 32)),
                       "unexpected keys.*blocks.0.attn.k.lora_A"),
        "shape": (lambda s: s.__setitem__(key, torch.zeros(32, 5)), f"wrong shapes.*{key}"),
    }
    for case, (edit, pattern) in cases.items():
        bad = {**payload, "state": dict(payload["state"])}
        edit(bad["state"])
        bad_path = tmp_path / f"{case}.pt"
        torch.save(bad, bad_path)
        with pytest.raises(CheckpointError, match=pattern):
            load_adapter(base_model(), bad_path)


def test_load_rejects_non_adapter_files_and_missing_file(tmp_path):
    torch.save({"model": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="not a minift adapter"):
        load_adapter(base_model(), tmp_path / "ckpt.pt")
    (tmp_path / "junk.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_adapter(base_model(), tmp_path / "junk.pt")
    with pytest.raises(MissingFileError, match="nope.pt"):
        load_adapter(base_model(), tmp_path / "nope.pt")


def test_load_rejects_other_method_config(tmp_path):
    path, _ = _saved(tmp_path)
    model = apply_method(base_model(), method_config("lora", r=2))
    with pytest.raises(CheckpointError, match="'r': 4 vs 2|r: 4 vs 2"):
        load_adapter(model, path)


def test_save_while_merged_raises(tmp_path):
    model = apply_method(base_model(), method_config("lora", r=4))
    merge(model)
    with pytest.raises(ConfigError, match="unmerge"):
        save_adapter(model, tmp_path / "a.pt")
    unmerge(model)
    save_adapter(model, tmp_path / "a.pt")


def test_apply_twice_and_unknown_names_raise():
    model = apply_method(base_model(), method_config("lora"))
    with pytest.raises(ConfigError, match="already"):
        apply_method(model, method_config("ia3"))
    with pytest.raises(ConfigError, match="'lora'"):  # the message lists the known methods
        method_config("lorra")
    with pytest.raises(ConfigError, match="rank"):
        method_config("lora", rank=4)
    with pytest.raises(ConfigError):
        apply_method(base_model(), {"method": "lora"})


def test_failed_inject_leaves_model_untouched():
    model = base_model()
    with pytest.raises(ConfigError):
        apply_method(model, method_config("lora", targets=["lm_head"]))
    assert all(p.requires_grad for p in model.parameters())
    assert getattr(model, "peft_config", None) is None


@pytest.mark.parametrize("name, kwargs", [("lora", {"r": 3, "targets": ("attn.q",), "layers": (1,)}),
                                          ("dora", {"alpha": 4}), ("ia3", {"layers": [0]})])
def test_config_dict_roundtrip(name, kwargs):
    cfg = method_config(name, **kwargs)
    d = cfg.to_dict()
    assert d["method"] == name
    back = MethodConfig.from_dict(d)
    assert type(back) is type(cfg) and back.to_dict() == d
    with pytest.raises(ConfigError, match="unknown"):
        MethodConfig.from_dict({**d, "bogus": 1})


def test_name_matching_rules():
    assert name_matches("blocks.0.attn.v", ["attn.v"]) and name_matches("blocks.0.attn.v", ["v"])
    assert not name_matches("blocks.0.attn.v_proj", ["v"])  # a suffix must start at a dot
    assert name_matches("blocks.0.attn.q", r"blocks\.\d+\.attn\.(q|v)")
    assert not name_matches("blocks.0.attn.q", "attn.q")  # a regex must match the whole name
    assert layer_index("blocks.3.mlp.fc") == 3 and layer_index("lm_head") is None


# a throw-away, non-mergeable method: exercises the extension API the way other methods use it
class _Gain(PeftModule):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.gain = nn.Parameter(torch.ones(()))
        self.register_buffer("offset", torch.full((inner.normalized_shape[0],), 0.5))

    def forward(self, x):
        y = self.inner(x)
        return y if self.disabled else y * self.gain + self.offset


@dataclass
class _GainConfig(MethodConfig):
    method: ClassVar[str] = "test-gain"

    def inject(self, model):
        replace_module(model, "ln_f", _Gain(model.ln_f))


@pytest.fixture
def gain_method():
    register(_GainConfig)
    yield
    del METHODS["test-gain"]


def test_extension_method_buffers_saved_and_not_mergeable(gain_method, tmp_path):
    model = apply_method(base_model(), method_config("test-gain"))
    assert set(adapter_state_dict(model)) == {"ln_f.gain", "ln_f.offset"}
    with torch.no_grad():
        model.ln_f.gain.fill_(2.0)
        model.ln_f.offset.fill_(-1.0)
    x = ids()
    save_adapter(model, tmp_path / "g.pt")
    assert torch.equal(load_adapter(base_model(), tmp_path / "g.pt")(x)[0], model(x)[0])
    with pytest.raises(ConfigError, match="cannot be merged"):
        merge(model)


def train_a_little(model, x, steps=2):
    """A few Adam steps on the adapter (no weight decay), so every method's parameters move as in training."""
    model.train()
    opt = torch.optim.Adam([p for _, p in trainable_parameters(model)], lr=0.05)
    for _ in range(steps):
        _, loss = model(x, targets=torch.roll(x, -1, dims=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("name", sorted(n for n in METHODS if not n.startswith("test-")))
def test_every_registered_method_keeps_the_core_contract(name, tmp_path):
    """For each method with default options: base frozen, disabled() = base, strict round trip, merge rules."""
    x = ids()[:, :6]  # short enough for prompt tuning's 10 virtual tokens in a 16-token context
    base_logits = base_model()(x)[0]
    model = apply_method(base_model(), method_config(name))
    assert count_parameters(model)["total"] - count_parameters(model)["trainable"] == n_base(CFG)
    train_a_little(model, x)
    out = model(x)[0]
    assert out.shape == base_logits.shape and not torch.allclose(out, base_logits)
    with disabled(model):
        if type(model.peft_config).quantizes_base:  # QLoRA: switched off, it is the quantised base
            fresh = apply_method(base_model(), method_config(name))
            assert torch.equal(model(x)[0], fresh(x)[0]) and not torch.equal(model(x)[0], base_logits)
        else:
            assert torch.equal(model(x)[0], base_logits)
    save_adapter(model, tmp_path / "a.pt")
    assert torch.equal(load_adapter(base_model(), tmp_path / "a.pt")(x)[0], out)
    if type(model.peft_config).merge_targets:  # the user must choose where the update goes (QLoRA)
        with pytest.raises(ConfigError, match="4-bit base"):
            merge(model)
        assert torch.allclose(merge_qlora(model, "dequantized")(x)[0], out, atol=1e-5, rtol=1e-5)
    elif type(model.peft_config).mergeable:
        merge(model)
        assert torch.allclose(model(x)[0], out, atol=1e-5, rtol=1e-5)
    else:
        with pytest.raises(ConfigError, match="cannot be merged"):
            merge(model)


def test_merge_and_unload_clears_the_config_of_a_wrapped_body():
    """A classifier-style wrapper whose inner GPT got the method: after merge_and_unload neither carries the config,
    so a new method can be applied to the body again."""
    import torch.nn as nn

    from minift.model.gpt import GPT, GPTConfig
    from minift.peft import apply_method, merge_and_unload, method_config

    torch.manual_seed(0)
    body = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, d_model=32))
    wrapper = nn.Module()
    wrapper.body = body
    apply_method(body, method_config("lora", r=2))
    wrapper.peft_config = body.peft_config
    merge_and_unload(wrapper)
    assert getattr(wrapper, "peft_config", None) is None and getattr(body, "peft_config", None) is None
    apply_method(body, method_config("lora", r=2))  # allowed again
