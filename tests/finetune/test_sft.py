"""SFT data path: template, shift + mask, truncation, padding, the loss that reaches the optimizer, generation."""

import string

import pytest
import torch
import torch.nn.functional as F

from minift.errors import ConfigError, InputError
from minift.model.gpt import GPT, IGNORE_INDEX, GPTConfig
from minift.finetune.sft import (collate_right, encode_dataset, encode_example, encode_ids, generate_batch, left_pad,
                                 sft_loss_fn)
from minift.finetune.templates import (ALPACA, AUTO_ALPACA_MIN_CONTEXT, PLAIN, PromptTemplate, get_template,
                                       resolve_template_name)


class CharTok:
    """A character tokenizer with the Tokenizer interface: enough to test the data path without training BPE."""

    chars = string.printable

    def __init__(self):
        self.eos_id, self.pad_id = len(self.chars), len(self.chars) + 1
        self.vocab_size = len(self.chars) + 2

    def encode(self, text, add_eos=False):
        return [self.chars.index(c) for c in text] + ([self.eos_id] if add_eos else [])

    def decode(self, ids, skip_special=True):
        return "".join(self.chars[i] for i in ids if i < len(self.chars))


@pytest.fixture
def tok():
    return CharTok()


def tiny_gpt(vocab, block=256, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, d_model=32)).eval()


EX = {"instruction": "Capital of France?", "input": "", "output": "Paris."}


def test_template_layout_and_input_section():
    p = ALPACA.format_prompt("Say hi.")
    assert "### Input:" not in p and p.endswith("### Response:\n") and p.startswith(ALPACA.preamble + "\n\n")
    assert "### Input:" not in ALPACA.format_prompt("Say hi.", "   ")  # whitespace-only input is empty
    q = ALPACA.format_prompt("Add.", "2 and 3")
    assert q.startswith(ALPACA.preamble_with_input) and "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n" in q
    assert PLAIN.format_prompt("Say hi.") == "### Instruction:\nSay hi.\n\n### Response:\n"
    custom = PromptTemplate(preamble="", instruction_header="Q:", response_header="A:")
    assert custom.format_prompt("Why?") == "Q:\nWhy?\n\nA:\n"
    assert get_template("plain") is PLAIN


def test_mask_count_and_first_supervised_target(tok):
    enc = encode_example(tok, EX, ALPACA)
    prompt_ids = tok.encode(ALPACA.format_prompt(EX["instruction"]))
    response_ids = tok.encode(" " + EX["output"]) + [tok.eos_id]  # the default response prefix is one space
    p = len(prompt_ids)
    # shifted convention: P − 1 masked label slots (the first prompt token is never a target at all)
    assert enc["labels"].count(IGNORE_INDEX) == p - 1
    assert enc["labels"][p - 1] == response_ids[0]
    assert enc["labels"][p - 1:] == response_ids  # response + EOS, all supervised, EOS last
    assert enc["input_ids"] == (prompt_ids + response_ids)[:-1]
    assert encode_example(tok, EX, ALPACA, train_on_prompt=True)["labels"] == (prompt_ids + response_ids)[1:]


def test_response_prefix_is_part_of_the_response_and_removed_from_answers(tok):
    # the default prefix is one space, tokenised with the response (" Paris" is one word-with-space, as in a corpus)
    assert ALPACA.response_prefix == PLAIN.response_prefix == " "
    p = len(tok.encode(PLAIN.format_prompt(EX["instruction"])))
    spaced = encode_example(tok, EX, PLAIN)
    flush = encode_example(tok, EX, PromptTemplate(preamble="", preamble_with_input="", response_prefix=""))
    assert spaced["labels"][p - 1:] == tok.encode(" " + EX["output"]) + [tok.eos_id]
    assert flush["labels"][p - 1:] == tok.encode(EX["output"]) + [tok.eos_id]
    assert spaced["input_ids"][:p] == flush["input_ids"][:p]  # the prompt itself does not change
    assert ALPACA.response_text("") == ""  # an empty output stays empty (only EOS is supervised)
    assert ALPACA.strip_response(" Paris.") == "Paris." and ALPACA.strip_response("Paris.") == "Paris."
    assert ALPACA.strip_response("  two") == " two"  # only the one prefix the model was taught is removed
    assert PromptTemplate(response_prefix="").strip_response(" x") == " x"


def test_auto_template_drops_the_preamble_in_short_contexts():
    assert resolve_template_name("auto", 128) == "plain" and resolve_template_name("auto", 1024) == "alpaca"
    assert resolve_template_name("auto", AUTO_ALPACA_MIN_CONTEXT) == "alpaca"
    assert resolve_template_name("alpaca", 64) == "alpaca"  # an explicit choice is kept
    with pytest.raises(ConfigError, match="unknown prompt template"):
        get_template("auto")  # resolve it first: it depends on the model


def test_rasbt_collate_vector():
    # sequences [0..4], [5, 6], [7, 8, 9] with EOS = pad = 50256
    eos = 50256
    batch = [encode_ids([], seq + [eos], train_on_prompt=True) for seq in ([0, 1, 2, 3, 4], [5, 6], [7, 8, 9])]
    ids, targets, mask = collate_right(batch, pad_id=eos)
    assert ids.tolist() == [[0, 1, 2, 3, 4], [5, 6, eos, eos, eos], [7, 8, 9, eos, eos]]
    assert targets.tolist() == [[1, 2, 3, 4, eos], [6, eos, -100, -100, -100], [8, 9, eos, -100, -100]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]


def test_same_loss_as_trl_unshifted_convention():
    # TRL collator vector (pad 0, labels unshifted): [[1,2,3],[4,5]] → input_ids [[1,2,3],[4,5,0]],
    # labels [[1,2,3],[4,5,−100]]; the model shifts internally. minift shifts in the data instead; the loss agrees.
    model = tiny_gpt(8)
    trl_ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    trl_labels = torch.tensor([[1, 2, 3], [4, 5, -100]])
    logits, _ = model(trl_ids)
    trl_loss = F.cross_entropy(logits[:, :-1].reshape(-1, 8), trl_labels[:, 1:].reshape(-1))
    ids, targets, _ = collate_right([encode_ids([], s, train_on_prompt=True) for s in ([1, 2, 3], [4, 5])], 0)
    assert targets.tolist() == trl_labels[:, 1:].tolist()
    s, n = sft_loss_fn(model, (ids, targets))
    torch.testing.assert_close(s / n, trl_loss)


def test_loss_equals_hand_computed_answer_loss(tok):
    model = tiny_gpt(tok.vocab_size)
    examples = [EX, {"instruction": "Echo", "input": "abc", "output": "abc"}, {"instruction": "Hi", "output": ""}]
    encoded, stats = encode_dataset(tok, examples, ALPACA)
    assert stats == {"n_in": 3, "n_kept": 3, "n_dropped_no_target": 0, "n_truncated": 0}
    batch = collate_right(encoded, tok.pad_id)
    loss_sum, n = sft_loss_fn(model, batch)
    # by hand: for each example run it alone and sum −log p(answer token | everything before it)
    total, count = 0.0, 0
    for ex in examples:
        prompt = tok.encode(ALPACA.format_prompt(ex["instruction"], ex.get("input", "")))
        answer = tok.encode(ALPACA.response_text(ex["output"])) + [tok.eos_id]
        seq = torch.tensor([prompt + answer])
        logp = torch.log_softmax(model(seq)[0][0], dim=-1)
        for j, a in enumerate(answer):
            total -= logp[len(prompt) + j - 1, a].item()
            count += 1
    assert int(n) == count
    assert loss_sum.item() == pytest.approx(total, rel=1e-5)
    # the mask on right padding changes nothing (why sft_loss_fn may leave it out)
    logits, _ = model(batch[0], attention_mask=batch[2])
    with_mask = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[1].reshape(-1), reduction="sum")
    assert with_mask.item() == pytest.approx(loss_sum.item(), rel=1e-5)


def test_truncation_trims_prompt_start_first_then_response_end():
    prompt, response = list(range(10)), [20, 21, 22, 23]
    enc = encode_ids(prompt, response, max_len=8)
    assert enc["truncated"] and len(enc["input_ids"]) == 8
    assert enc["input_ids"] == [5, 6, 7, 8, 9, 20, 21, 22]  # prompt keeps its end
    assert [y for y in enc["labels"] if y != IGNORE_INDEX] == response  # every answer token survives
    enc = encode_ids([1, 2, 3], list(range(20, 32)), max_len=8)
    assert enc["input_ids"] == [3, 20, 21, 22, 23, 24, 25, 26] and enc["labels"] == list(range(20, 28))
    assert not encode_ids([1, 2], [3], max_len=8)["truncated"]


def test_all_masked_examples_are_dropped_and_guarded(tok):
    empty = {"instruction": "Say nothing.", "output": ""}
    encoded, stats = encode_dataset(tok, [EX, empty], ALPACA, add_eos=False)
    assert stats["n_dropped_no_target"] == 1 and stats["n_kept"] == 1
    with pytest.raises(InputError, match="none of the 1 examples"):
        encode_dataset(tok, [empty], ALPACA, add_eos=False)
    with pytest.raises(InputError, match="no supervised target"):
        collate_right([{"input_ids": [1, 2], "labels": [-100, -100]}], 0)
    with pytest.raises(InputError, match=r"examples\[1\]: field 'output' missing"):
        encode_dataset(tok, [EX, {"instruction": "x"}], ALPACA)
    model = tiny_gpt(tok.vocab_size)
    ids = torch.tensor([[1, 2, 3]])
    loss_sum, n = sft_loss_fn(model, (ids, torch.full_like(ids, IGNORE_INDEX)))
    assert int(n) == 0 and loss_sum.item() == 0.0 and not torch.isnan(loss_sum)
    loss_sum.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_left_pad_vector():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    with pytest.raises(InputError):
        left_pad([[1], []], 0)


def test_batched_generation_equals_one_by_one(tok):
    model = tiny_gpt(tok.vocab_size, seed=3)
    prompts = [EX, {"instruction": "Tell me a long story about a cat.", "input": "a cat"}, "Hi", "Count to three."]
    batched = generate_batch(model, tok, prompts, max_new_tokens=8, batch_size=4)
    single = [generate_batch(model, tok, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single and all(len(a) > 0 for a in batched)
    # the decoded answer is exactly the greedy continuation of the formatted prompt, cut at EOS
    ids = torch.tensor([tok.encode(ALPACA.format_prompt("Hi"))])
    out = model.generate(ids, 8, temperature=0.0, eos_id=tok.eos_id)[0, ids.size(1):].tolist()
    out = out[: out.index(tok.eos_id)] if tok.eos_id in out else out
    assert batched[2] == ALPACA.strip_response(tok.decode(out))


def test_generation_needs_room_for_the_prompt(tok):
    model = tiny_gpt(tok.vocab_size, block=32)
    with pytest.raises(ConfigError, match="no room for a prompt"):
        generate_batch(model, tok, ["Hi"], max_new_tokens=32)
    with pytest.raises(ConfigError, match="10 reserved"):  # a soft prompt's positions count against the context
        generate_batch(model, tok, ["Hi"], max_new_tokens=22, reserve=10)
    assert len(generate_batch(model, tok, ["Hi"], max_new_tokens=21, reserve=10)) == 1


def test_mask_with_the_real_bpe_tokenizer():
    # prompt and response are tokenised separately, so the mask lands exactly on the boundary even with BPE
    from minift.data.tasks import load_task
    from minift.model.tokenizer import Tokenizer

    examples = load_task("qa", "train")[:200]
    texts = [ALPACA.format_prompt(e["instruction"]) + e["output"] for e in examples]
    bpe = Tokenizer.train(texts, vocab_size=400)
    encoded, stats = encode_dataset(bpe, examples, ALPACA, max_len=64)
    assert stats["n_kept"] == 200
    for ex, enc in zip(examples, encoded):
        p = len(bpe.encode(ALPACA.format_prompt(ex["instruction"])))
        assert enc["labels"].count(IGNORE_INDEX) == p - 1
        assert bpe.decode(enc["labels"][p - 1:], skip_special=False) == " " + ex["output"] + bpe.eos_token


@pytest.mark.parametrize("method", [None, "lora", "prompt", "loreft"])
def test_the_loss_on_supervised_positions_equals_the_full_logits_loss(method):
    """sft_loss_fn runs the LM head on the supervised positions only; its loss and every gradient equal those of the
    whole (B, T, V) logits with −100 ignored, in float64, with or without a method (prompt tuning and ReFT replace
    model.hidden, so the gathered path must go through it)."""
    from minift.peft import apply_method, method_config
    from helpers import make_model

    model = make_model(vocab_size=50, block_size=32, sharpen=True).double().train()
    if method is not None:
        apply_method(model, method_config(method))
        torch.manual_seed(1)
        with torch.no_grad():  # move every trained tensor off its no-op init, so the method's path matters
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (3, 12), generator=g)
    targets = torch.randint(0, 50, (3, 12), generator=g)
    targets[:, :5] = IGNORE_INDEX  # prompts
    targets[1, 9:] = IGNORE_INDEX  # padding
    trained = [p for p in model.parameters() if p.requires_grad]

    def grads(loss):
        return torch.autograd.grad(loss, trained)

    def full_loss_fn(m, b):  # the whole (B, T, V) logits, −100 ignored
        logits, _ = m(b[0])
        return F.cross_entropy(logits.reshape(-1, 50), b[1].reshape(-1), ignore_index=IGNORE_INDEX,
                               reduction="sum"), None

    batch = (ids, targets, torch.ones_like(ids))
    wrap = model.peft_config.wrap_sft_loss if method else (lambda f: f)  # ReFT: the batch's prompt positions
    loss_sum, n = wrap(sft_loss_fn)(model, batch)
    ours = grads(loss_sum)
    full, _ = wrap(full_loss_fn)(model, batch)
    assert int(n) == int((targets != IGNORE_INDEX).sum())
    assert torch.allclose(loss_sum, full, rtol=1e-12, atol=1e-12)
    for a, b in zip(ours, grads(full)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    none = torch.full_like(targets, IGNORE_INDEX)
    empty, n0 = sft_loss_fn(model, (ids, none, torch.ones_like(ids)))
    assert float(empty.detach()) == 0.0 and int(n0) == 0 and all(float(x.abs().sum()) == 0 for x in grads(empty))
