"""Byte-level BPE tokenizer: text <-> token ids, trained with the `tokenizers` library.

Byte-pair encoding (BPE; Sennrich, Haddow & Birch 2016, "Neural Machine Translation of Rare Words with Subword
Units") builds a vocabulary bottom-up:

    start:   every word is a sequence of single symbols;  vocabulary V = the symbol alphabet
    repeat:  count every adjacent pair (a, b) over all words, weighted by word frequency;
             merge the most frequent pair into one new symbol ab;  V ← V ∪ {ab}
    until    |V| = vocab_size  (or no pair occurs min_frequency times)

Encoding a new word replays the learned merges in the order they were learned, so a frequent word ends up as one
token and a rare one as a few pieces; nothing is ever "unknown".

GPT-2's byte-level variant (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners") starts
from the 256 possible *bytes* of the UTF-8 encoding instead of characters, so any Unicode string (emoji, CJK,
accents, odd whitespace) can be encoded and decoded back exactly. Each byte is shown as a printable stand-in
character (space is 'Ġ'), and a regular expression first splits the text into words, numbers, punctuation and
whitespace, so merges never cross a word boundary. Here the `ByteLevel` pre-tokenizer and decoder do both steps.

Special tokens. The first special token is end-of-text (EOS, separates documents and ends answers), the second is
padding. They sit at ids 0 and 1 and are never produced by merges. Decision: special-token *strings* appearing in
user text are NOT parsed as specials — "<|endoftext|>" typed by a user is encoded as ordinary text. Otherwise any
text (a review, a web page) could inject a fake end-of-text. The only way to get `eos_id` into a sequence is to
append it on purpose: `encode(text, add_eos=True)`.

Shapes: encode: str -> list[int] of length n_tokens; encode_batch: list[str] -> list[list[int]] (ragged; padding
is the collate function's job).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from minift.errors import CheckpointError, ConfigError, InputError, MissingFileError
from minift.files import atomic_write_text

FILENAME = "tokenizer.json"
CONFIG_FILENAME = "tokenizer_config.json"
DEFAULT_SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>")


def _resolve(path: str | os.PathLike) -> Path:
    """A path ending in .json is the file itself; anything else is a directory that holds tokenizer.json."""
    path = Path(path)
    return path if path.suffix == ".json" else path / FILENAME


class Tokenizer:
    """A trained byte-level BPE tokenizer. Build one with `Tokenizer.train` or `Tokenizer.load`."""

    def __init__(self, backend: _Backend, eos_token: str | None = None, pad_token: str | None = None):
        """`eos_token` / `pad_token` name the end-of-text and padding tokens; by default the first and second
        special tokens (minift's own tokenizers). A real model's tokenizer names its own (SmolLM2: <|im_end|>)."""
        specials = sorted((i, t.content) for i, t in backend.get_added_tokens_decoder().items() if t.special)
        if len(specials) < 1 or (len(specials) < 2 and pad_token is None):
            raise CheckpointError(f"a minift tokenizer needs special tokens for end-of-text and padding, found "
                                  f"{len(specials)}; train it with Tokenizer.train")
        self._backend = backend
        # Treat special-token strings in input text as plain text (see the module docstring).
        backend.encode_special_tokens = True
        by_name = {t: i for i, t in specials}
        for given in (eos_token, pad_token):
            if given is not None and given not in by_name:
                raise CheckpointError(f"{given!r} is not a special token of this tokenizer")
        self.eos_token = eos_token or specials[0][1]
        self.pad_token = pad_token or specials[1][1]
        self.eos_id, self.pad_id = by_name[self.eos_token], by_name[self.pad_token]
        self.special_ids = frozenset(i for i, _ in specials)

    # ------------------------------------------------------------------------------------------- training
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int,
              special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS, min_frequency: int = 2) -> "Tokenizer":
        """Learn merges from `texts` until the vocabulary holds `vocab_size` tokens (256 bytes + specials +
        merges). Deterministic: the same texts give the same tokenizer."""
        special_tokens = list(special_tokens)
        if len(special_tokens) < 2 or len(set(special_tokens)) != len(special_tokens) or not all(special_tokens):
            raise ConfigError(f"special_tokens must hold at least 2 distinct non-empty strings (end-of-text "
                              f"first, padding second), got {special_tokens}")
        n_min = 256 + len(special_tokens)
        if vocab_size < n_min:
            raise ConfigError(f"vocab_size={vocab_size} is too small: byte-level BPE needs the 256 bytes plus "
                              f"{len(special_tokens)} special tokens, so at least {n_min}")
        if min_frequency < 1:
            raise ConfigError(f"min_frequency must be at least 1, got {min_frequency}")
        backend = _Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even unseen ones
            show_progress=False)
        backend.train_from_iterator(iter(texts), trainer=trainer)
        return cls(backend)

    # ------------------------------------------------------------------------------------- encode / decode
    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        """Token ids of `text`; with add_eos the end-of-text id is appended."""
        if not isinstance(text, str):
            raise InputError(f"encode expects a str, got {type(text).__name__}")
        ids = self._backend.encode(text, add_special_tokens=False).ids
        return ids + [self.eos_id] if add_eos else ids

    def encode_batch(self, texts: Sequence[str], add_eos: bool = False) -> list[list[int]]:
        """encode() for many texts at once (the library encodes them in parallel); same ids as encode()."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"encode_batch expects strings; item {i} is a {type(t).__name__}")
        batch = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)  # fast: no offsets
        out = [e.ids for e in batch(texts, add_special_tokens=False)]
        return [ids + [self.eos_id] for ids in out] if add_eos else out

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids` (a list, or a 1-D tensor); special tokens are dropped unless skip_special=False.
        A sequence cut in the middle of a multi-byte character decodes that character as '�'."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        bad = [i for i in ids if not 0 <= int(i) < self.vocab_size]
        if bad:
            raise InputError(f"token ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        return self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def id_to_token(self, i: int) -> str | None:
        return self._backend.id_to_token(i)

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    # --------------------------------------------------------------------------------------- save / load
    def to_json(self) -> str:
        return self._backend.to_str()

    def save(self, path: str | os.PathLike) -> Path:
        """Write tokenizer.json atomically, and beside it tokenizer_config.json: which tokens end a text and pad a
        batch, and that special-token strings in text are plain text (`split_special_tokens`, so that other
        libraries reading these files tokenise user text exactly as minift does). Returns tokenizer.json's path."""
        path = _resolve(path)
        atomic_write_text(path, self.to_json())
        config = {"eos_token": self.eos_token, "pad_token": self.pad_token, "split_special_tokens": True,
                  "add_bos_token": False, "tokenizer_class": "PreTrainedTokenizerFast"}
        atomic_write_text(path.with_name(CONFIG_FILENAME), json.dumps(config, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a tokenizer saved by `save` (a .json file, or a directory holding tokenizer.json)."""
        path = _resolve(path)
        if not path.is_file():
            raise MissingFileError(f"no tokenizer file at {path}; train one with Tokenizer.train and save it")
        try:
            backend = _Backend.from_str(path.read_text(encoding="utf-8"))
        except Exception as e:  # not JSON, not a tokenizer, truncated, not UTF-8
            raise CheckpointError(f"{path} is not a readable tokenizer file ({type(e).__name__}: {e}); "
                                  "it may be corrupt — retrain and save it again") from None
        if not isinstance(backend.model, models.BPE) or not isinstance(backend.decoder, decoders.ByteLevel):
            raise CheckpointError(f"{path} is a tokenizer, but not a byte-level BPE one as minift writes")
        names = {}
        config = path.with_name(CONFIG_FILENAME)
        if config.is_file():  # written by save(); absent for tokenizers saved before it existed
            try:
                saved = json.loads(config.read_text(encoding="utf-8"))
                names = {"eos_token": saved.get("eos_token"), "pad_token": saved.get("pad_token")}
            except (json.JSONDecodeError, AttributeError):
                raise CheckpointError(f"{config} is not a valid tokenizer config (JSON)") from None
        return cls(backend, **names)

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, eos={self.eos_token!r}:{self.eos_id}, "
                f"pad={self.pad_token!r}:{self.pad_id})")
