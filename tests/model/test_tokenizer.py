"""Byte-level BPE tokenizer: exact round-trips on any Unicode, determinism, special tokens, save/load, errors."""

import json
import random

import pytest
import torch

from minift.data.corpus import generate_corpus
from minift.errors import CheckpointError, ConfigError, InputError, MissingFileError
from minift.model.tokenizer import Tokenizer

pytestmark = pytest.mark.xdist_group("tokenizer")  # its module-scoped fixtures are built once under pytest -n

UNICODE_SAMPLES = [
    "", " ", "   ", "\n", "\t\t x \r\n", "Hello, world!", "The capital of France is Paris.",
    "café naïve façade Ångström", "日本語のテキスト", "中文 한국어 ไทย", "emoji 🤖🎉👍🏽 and flags 🇫🇷",
    "Zalgo: z̷̢a̸l̵g̶o", "mixed\u00a0nbsp\u2003em-space", "  leading and trailing  ", "tabs\tand\vvertical\f",
    "<|endoftext|>", "text <|pad|> more <|endoftext|>", "\x00\x01 control", "a" * 300,
]


@pytest.fixture(scope="module")
def texts():
    return generate_corpus(seed=0, n_docs=300)


@pytest.fixture(scope="module")
def tok(texts):
    return Tokenizer.train(texts, vocab_size=400)


def random_unicode(rng: random.Random, n: int) -> str:
    """Random code points from all planes, without surrogates (which are not valid in UTF-8)."""
    out = []
    while len(out) < n:
        cp = rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000),
                         rng.randrange(0x10000, 0x110000), rng.choice([0x20, 0x0A, 0x09])])
        if not 0xD800 <= cp <= 0xDFFF:
            out.append(chr(cp))
    return "".join(out)


def test_round_trip_on_arbitrary_unicode(tok):
    rng = random.Random(0)
    for s in UNICODE_SAMPLES + [random_unicode(rng, rng.randrange(0, 60)) for _ in range(200)]:
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.encode("") == []


def test_merges_were_learned(tok, texts):
    assert 300 < tok.vocab_size <= 400
    ids = tok.encode(" capital")
    assert len(ids) == 1 and tok.id_to_token(ids[0]) == "Ġcapital"  # 'Ġ' is the byte-level stand-in for space
    n_tokens = sum(map(len, tok.encode_batch(texts)))
    assert n_tokens < sum(len(t.encode()) for t in texts) / 1.5  # compresses the bytes it was trained on


def test_training_is_deterministic(texts, tok):
    again = Tokenizer.train(texts, vocab_size=400)
    assert again.to_json() == tok.to_json()
    assert again.encode(texts[0]) == tok.encode(texts[0])


def test_special_tokens_are_distinct_stable_and_not_parsed_from_text(tok):
    assert (tok.eos_id, tok.pad_id) == (0, 1)
    assert (tok.eos_token, tok.pad_token) == ("<|endoftext|>", "<|pad|>")
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<|pad|>") == 1
    # Typed in user text, the special strings are ordinary text: no injected end-of-text.
    ids = tok.encode("a <|endoftext|> b <|pad|>")
    assert tok.eos_id not in ids and tok.pad_id not in ids
    # add_eos is the only way in; decode drops specials unless asked not to.
    ids = tok.encode("Hello", add_eos=True)
    assert ids[-1] == tok.eos_id and ids[:-1] == tok.encode("Hello")
    assert tok.decode(ids) == "Hello"
    assert tok.decode(ids, skip_special=False) == "Hello<|endoftext|>"
    assert tok.decode([tok.pad_id, *tok.encode("Hi")]) == "Hi"


def test_custom_special_tokens_order(texts):
    t = Tokenizer.train(texts[:50], vocab_size=300, special_tokens=("<eos>", "<pad>", "<sep>"))
    assert (t.eos_token, t.pad_token, t.eos_id, t.pad_id) == ("<eos>", "<pad>", 0, 1)
    assert t.token_to_id("<sep>") == 2 and t.special_ids == {0, 1, 2}


def test_batch_encode_equals_single_encode(tok, texts):
    batch = texts[:40] + UNICODE_SAMPLES
    assert tok.encode_batch(batch) == [tok.encode(t) for t in batch]
    assert tok.encode_batch(batch, add_eos=True) == [tok.encode(t, add_eos=True) for t in batch]
    assert tok.encode_batch([]) == []


def test_decode_accepts_tensors(tok):
    ids = tok.encode("Paris is the capital of France.")
    assert tok.decode(torch.tensor(ids)) == "Paris is the capital of France."


def test_save_load_gives_identical_ids(tok, texts, tmp_path):
    f = tok.save(tmp_path / "model")  # a directory: writes model/tokenizer.json
    assert f == tmp_path / "model" / "tokenizer.json" and f.is_file()
    # no temporary file left behind; beside the tokenizer, its config (eos, pad, special strings as plain text)
    assert sorted(p.name for p in f.parent.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    config = json.loads((f.parent / "tokenizer_config.json").read_text())
    assert config["eos_token"] == tok.eos_token and config["split_special_tokens"] is True
    for loaded in (Tokenizer.load(tmp_path / "model"), Tokenizer.load(f)):
        assert loaded.to_json() == tok.to_json()
        assert (loaded.eos_id, loaded.pad_id, loaded.vocab_size) == (tok.eos_id, tok.pad_id, tok.vocab_size)
        for s in texts[:20] + UNICODE_SAMPLES:
            assert loaded.encode(s, add_eos=True) == tok.encode(s, add_eos=True)
        assert tok.eos_id not in loaded.encode("<|endoftext|>")  # the no-injection rule survives a reload
    g = tok.save(tmp_path / "other.json")  # a .json path is the file itself
    assert Tokenizer.load(g).encode("hello") == tok.encode("hello")


def test_bad_paths_and_files_raise_the_right_errors(tok, tmp_path):
    with pytest.raises(MissingFileError):
        Tokenizer.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):  # MissingFileError is also a FileNotFoundError
        Tokenizer.load(tmp_path / "nowhere.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("this is not json {", encoding="utf-8")
    with pytest.raises(CheckpointError):
        Tokenizer.load(garbage)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(tok.to_json()[: len(tok.to_json()) // 2], encoding="utf-8")
    with pytest.raises(CheckpointError):
        Tokenizer.load(truncated)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    with pytest.raises(CheckpointError):
        Tokenizer.load(other)
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(CheckpointError):
        Tokenizer.load(binary)


def test_bad_arguments(tok, texts):
    with pytest.raises(ConfigError):
        Tokenizer.train(texts[:10], vocab_size=100)  # below 256 bytes + specials
    with pytest.raises(ConfigError):
        Tokenizer.train(texts[:10], vocab_size=300, special_tokens=("<|endoftext|>",))
    with pytest.raises(ConfigError):
        Tokenizer.train(texts[:10], vocab_size=300, special_tokens=("<a>", "<a>"))
    with pytest.raises(InputError):
        tok.decode([tok.vocab_size])
    with pytest.raises(InputError):
        tok.decode([-1])
    with pytest.raises(InputError):
        tok.encode(b"bytes")
    with pytest.raises(InputError):
        tok.encode_batch(["ok", 3])
