"""QLoRA = LoRA over a base frozen in 4 bits (minift/peft/qlora.py): exact at init against the dequantised base,
a frozen base after training, a strict adapter file without the base in it, both architectures, and the three
merge targets with their trade-off measured."""

import copy

import pytest
import torch
from helpers import base_model, ids, lora_layers, train_steps

from minift.errors import ConfigError
from minift.model.llama import Llama, LlamaConfig
from minift.peft import apply_method, count_parameters, load_adapter, merge, merge_qlora, method_config, save_adapter
from minift.quant import Linear4bit, quantize_4bit, weight_memory_bytes


def dequantised_copy(plain, quantised):
    """`plain` with every weight the QLoRA model quantised replaced by its dequantised value."""
    ref = copy.deepcopy(plain)
    mods = dict(ref.named_modules())
    with torch.no_grad():
        for name, m in quantised.named_modules():
            if isinstance(m, Linear4bit):
                mods[name.removesuffix(".base")].weight.copy_(m.dequantize())
    return ref


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=64, block_size=16, n_layer=2, n_head=4, n_kv_head=2, d_model=32,
                             d_ff=64)).eval()


@pytest.mark.parametrize("make", [base_model, tiny_llama], ids=["gpt", "llama"])
def test_at_init_qlora_equals_the_dequantised_base_bit_for_bit(make):
    plain, x = make(), ids()
    model = apply_method(copy.deepcopy(plain), method_config("qlora", r=4, targets="all-linear"))
    quantised = [n for n, m in model.named_modules() if isinstance(m, Linear4bit)]
    assert quantised and not any(n.startswith("lm_head") for n in quantised)
    assert all(isinstance(m.base, Linear4bit) for m in lora_layers(model).values())
    with torch.no_grad():
        assert torch.equal(model(x)[0], dequantised_copy(plain, model)(x)[0])
        assert not torch.equal(model(x)[0], plain(x)[0])  # the quantisation error is there from step 0


@pytest.mark.parametrize("make", [base_model, tiny_llama], ids=["gpt", "llama"])
def test_training_moves_only_the_adapter(make):
    model, x = apply_method(make(), method_config("qlora", r=4, alpha=8)), ids()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = train_steps(model, x, x, steps=8)
    assert losses[-1] < losses[0]
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}


def test_counts_and_memory():
    plain = base_model()
    model = apply_method(copy.deepcopy(plain), method_config("qlora", r=4))
    assert count_parameters(model)["total"] == count_parameters(plain)["total"] + count_parameters(model)["trainable"]
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    fp32_linear = sum(4 * m.in_features * m.out_features for m in layers)
    assert weight_memory_bytes(model) == weight_memory_bytes(plain) - fp32_linear + \
        sum(m.weight_bytes for m in layers) + 4 * count_parameters(model)["trainable"]


def test_the_adapter_file_holds_the_adapter_only_and_loads_strictly(tmp_path):
    x = ids()
    model = apply_method(base_model(), method_config("qlora", r=4, quant_type="fp4", block_size=32))
    train_steps(model, x, x, steps=3)
    save_adapter(model, tmp_path / "a.pt")
    state = torch.load(tmp_path / "a.pt", weights_only=True)["state"]
    assert sorted({k.rsplit(".", 1)[-1] for k in state}) == ["lora_A", "lora_B"]
    again = load_adapter(base_model(), tmp_path / "a.pt")
    with torch.no_grad():
        assert torch.equal(again(x)[0], model(x)[0])
    with pytest.raises(Exception, match="fingerprint|weights"):
        load_adapter(base_model(seed=5), tmp_path / "a.pt")


def test_options_are_checked():
    with pytest.raises(ConfigError, match="quant_type"):
        method_config("qlora", quant_type="nf8")
    with pytest.raises(ConfigError, match="power of two"):
        method_config("qlora", block_size=100)
    with pytest.raises(ConfigError, match="double_quant"):
        method_config("qlora", double_quant="yes")


def test_merge_targets_and_the_trap():
    """dequantized reproduces the trained model; original and requantized drift; an in-place merge is refused."""
    plain, x = base_model(), ids()
    model = apply_method(copy.deepcopy(plain), method_config("qlora", r=4, alpha=8))
    train_steps(model, x, x, steps=5, lr=3e-3)
    with pytest.raises(ConfigError, match="4-bit base"):
        merge(model)
    with torch.no_grad():
        trained = model(x)[0]
        out = {into: merge_qlora(copy.deepcopy(model), into, plain.state_dict())(x)[0]
               for into in ("dequantized", "original", "requantized")}
    assert torch.allclose(out["dequantized"], trained, atol=1e-5)
    assert (out["original"] - trained).abs().max() > 1e-3
    assert (out["requantized"] - trained).abs().max() > 1e-3
    merged = merge_qlora(copy.deepcopy(model), "dequantized")
    assert not any(isinstance(m, Linear4bit) for m in merged.modules()) and not lora_layers(merged)
    with pytest.raises(ConfigError, match="original"):
        merge_qlora(copy.deepcopy(model), "original")


def test_requantising_a_small_update_rounds_most_of_it_away():
    """‖ΔW_effective‖ / ‖ΔW‖ for an update a hundredth of the weights' scale: most of it is lost."""
    torch.manual_seed(0)
    w = torch.randn(64, 64) * 0.02
    q = quantize_4bit(w, "nf4", 64)
    delta = torch.randn(64, 64) * 0.0002
    effective = quantize_4bit(q.dequantize() + delta, "nf4", 64).dequantize() - q.dequantize()
    kept = float((effective * delta).sum() / delta.square().sum())  # the share of ΔW along its own direction
    assert kept < 0.5
