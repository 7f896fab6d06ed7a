"""GPT-2 from a Hugging Face directory, read without transformers and without pickle: a random-init GPT-2 that
`transformers` saves (safetensors) loads with logits equal to 1e-4 and identical greedy generation; the tokenizer
comes from tokenizer.json or from vocab.json + merges.txt; a pickled checkpoint and a broken config are refused in
one line."""

from __future__ import annotations

import json

import pytest
import torch

from minift.base.cache import resolve_base
from minift.base.hf_gpt2 import load_hf_gpt2
from minift.cli import main
from minift.data.corpus import generate_corpus
from minift.errors import CheckpointError
from minift.model.tokenizer import Tokenizer

pytestmark = pytest.mark.xdist_group("hf_gpt2")  # its module-scoped fixtures are built once under pytest -n


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=300, n_positions=64, n_embd=48, n_layer=2, n_head=4,
                                  bos_token_id=0, eos_token_id=0)
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # trained-scale weights, so that the tanh-vs-erf GELU difference would show
        for p in ref.parameters():
            p.mul_(5)
    ref.save_pretrained(d, safe_serialization=True)
    tok = Tokenizer.train(generate_corpus(n_docs=200, seed=0), vocab_size=300,
                          special_tokens=["<|endoftext|>", "<|pad|>"])
    tok.save(d)
    return d, ref


def test_logits_and_greedy_generation_equal_transformers(hf_dir):
    d, ref = hf_dir
    model, tok = load_hf_gpt2(d)
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(ids)[0] - ref(ids).logits).abs().max().item() <= 1e-4
        want = ref.generate(ids[:1, :5], max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(model.generate(ids[:1, :5], 12, temperature=0.0), want)
    assert model.config.activation == "gelu_tanh" and tok.eos_token == "<|endoftext|>"
    assert resolve_base(str(d))[2] is None  # a real model: no preset pretraining text


def test_vocab_and_merges_instead_of_tokenizer_json(hf_dir, tmp_path):
    d, _ = hf_dir
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    backend = Tokenizer.load(d)._backend
    backend.model.save(str(tmp_path))  # writes vocab.json and merges.txt
    model, tok = load_hf_gpt2(tmp_path)
    assert tok.encode("The capital of France is Paris.") == Tokenizer.load(d).encode("The capital of France is Paris.")


def test_pickles_and_broken_configs_are_refused(hf_dir, tmp_path, capsys):
    d, _ = hf_dir
    (tmp_path / "config.json").write_text((d / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle")
    with pytest.raises(CheckpointError, match="pickle that can run code"):
        load_hf_gpt2(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    config = json.loads((d / "config.json").read_text())
    del config["n_embd"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["generate", str(tmp_path), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "not a GPT-2 config" in err and len(err.strip().splitlines()) == 1
