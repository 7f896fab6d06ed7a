"""minift's GPT handed to Hugging Face: exported as a GPT-2 directory it loads in `transformers` with minift's
logits; its LoRA adapter, q, k and v fused into GPT-2's c_attn, loads in `peft` with minift's logits; and minift
reads its own export back."""

from __future__ import annotations

import pytest
import torch

from minift.base.export import export_lora, export_model
from minift.base.hf_gpt2 import load_hf_gpt2
from minift.errors import ConfigError
from minift.peft import LoRAConfig, apply_method
from helpers import make_model, randomise_B


def _ids(tok):
    return torch.tensor([tok.encode("The old clock in the hall stopped at a quarter past three.")])


@pytest.mark.parametrize("bias, activation", [(True, "gelu"), (False, "gelu_tanh")])
def test_a_gpt_exports_as_gpt2_with_equal_logits(chat_tok, tmp_path, bias, activation):
    transformers = pytest.importorskip("transformers")
    model = make_model(vocab_size=chat_tok.vocab_size, block_size=64, bias=bias, activation=activation, sharpen=True)
    export_model(model, chat_tok, tmp_path / "gpt2")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2", dtype=torch.float32).eval()
    ids = _ids(chat_tok)
    with torch.no_grad():
        ours = model(ids)[0]
        assert (hf(ids).logits - ours).abs().max().item() <= 1e-4 * ours.abs().max().item()
        back, _ = load_hf_gpt2(tmp_path / "gpt2")  # minift reads its own export as any GPT-2 directory
        assert torch.allclose(back(ids)[0], ours, atol=1e-5)


@pytest.mark.parametrize("targets, rslora", [(["attn.q", "attn.v"], False), ("all-linear", True),
                                             (["attn.k", "mlp.proj"], False)])
def test_a_gpt_lora_loads_in_peft_with_qkv_fused(chat_tok, tmp_path, targets, rslora):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    base = make_model(vocab_size=chat_tok.vocab_size, block_size=64, sharpen=True)
    export_model(base, chat_tok, tmp_path / "base")
    apply_method(base, LoRAConfig(r=4, alpha=8, targets=targets, rslora=rslora))
    randomise_B(base, std=0.5)
    export_lora(base, tmp_path / "adapter", str(tmp_path / "base"))
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base", dtype=torch.float32)
    with_adapter = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    ids = _ids(chat_tok)
    with torch.no_grad():
        ours = base(ids)[0]
        plain = with_adapter.get_base_model()
        with with_adapter.disable_adapter():
            assert (plain(ids).logits - ours).abs().max().item() > 1e-2  # the adapter matters
        assert (with_adapter(ids).logits - ours).abs().max().item() <= 1e-4 * ours.abs().max().item()


def test_a_lora_on_chosen_layers_names_only_them_and_no_lora_is_refused(chat_tok, tmp_path):
    import json

    model = make_model(vocab_size=chat_tok.vocab_size, block_size=64, n_layer=3)
    apply_method(model, LoRAConfig(r=2, targets=["attn.q"], layers=[0, 2]))
    config = json.loads((export_lora(model, tmp_path / "some") / "adapter_config.json").read_text())
    assert config["target_modules"] == r"transformer\.h\.(0|2)\.(attn\.c_attn)"
    assert config["rank_pattern"] == {"attn.c_attn": 2} and config["fan_in_fan_out"] is True
    with pytest.raises(ConfigError, match="needs a model with LoRA"):
        export_lora(make_model(vocab_size=chat_tok.vocab_size), tmp_path / "x")
