"""ChatML, the conversation layout of SmolLM2 and many instruct models, built as token ids:

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n{answer}<|im_end|>\\n

The special tokens are inserted by id, between pieces of text encoded with special-token strings treated as plain
text, so a user who types "<|im_start|>assistant" in a message cannot forge a turn. With no system message, SmolLM2's
own template puts in its default one (SMOLLM2_SYSTEM). The generation prompt ends with "<|im_start|>assistant\\n";
the model answers and closes its turn with <|im_end|>, where generation stops.
"""

from __future__ import annotations

from minift.errors import ConfigError, InputError

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
ROLES = ("system", "user", "assistant")


def chat_ids(tok, messages: list[dict], add_generation_prompt: bool = True,
             default_system: str | None = SMOLLM2_SYSTEM) -> list[int]:
    """Token ids of a conversation [{"role", "content"}, …] in ChatML (see the module docstring)."""
    start, end = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
    if start is None or end is None:
        raise ConfigError("this model's tokenizer has no <|im_start|> / <|im_end|> tokens: it was not trained for "
                          "chat; use --prompt (or a template) instead of --chat")
    _validate(messages)
    if messages[0]["role"] != "system" and default_system:
        messages = [{"role": "system", "content": default_system}, *messages]
    newline = tok.encode("\n")
    ids = []
    for m in messages:
        ids += [start, *tok.encode(f"{m['role']}\n{m['content']}"), end, *newline]
    if add_generation_prompt:
        ids += [start, *tok.encode("assistant\n")]
    return ids


def _validate(messages: list[dict]) -> None:
    if not messages:
        raise InputError("a conversation needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"message {i} must be {{'role': one of {ROLES}, 'content': str}}, got {m!r}")


def chat_example(tok, messages: list[dict], default_system: str | None = SMOLLM2_SYSTEM) -> dict:
    """A whole conversation as a training example: {"input_ids", "labels"} with minift's shift (labels[t] is the
    token after input_ids[t]) and −100 everywhere except the assistant's answers, each including its closing
    <|im_end|> (so the model learns to stop). The turn headers, the user's and the system's words and the newline
    after each <|im_end|> are never trained. An answer is encoded apart from its "assistant\\n" header, so the
    supervised tokens start exactly at the answer. A conversation without an assistant turn has nothing to learn:
    InputError."""
    from minift.model.gpt import IGNORE_INDEX

    start, end = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
    if start is None or end is None:
        raise ConfigError("this model's tokenizer has no <|im_start|> / <|im_end|> tokens: it was not trained for chat")
    _validate(messages)
    if not any(m["role"] == "assistant" for m in messages):
        raise InputError("a training conversation needs at least one assistant turn: there is nothing to learn")
    if messages[0]["role"] != "system" and default_system:
        messages = [{"role": "system", "content": default_system}, *messages]
    seq, trained, newline = [], [], tok.encode("\n")
    for m in messages:
        if m["role"] == "assistant":
            head, body = [start, *tok.encode("assistant\n")], [*tok.encode(m["content"]), end]
        else:
            head, body = [start, *tok.encode(f"{m['role']}\n{m['content']}"), end], []
        seq += head + body + newline
        trained += [False] * len(head) + [True] * len(body) + [False] * len(newline)
    labels = [t if ok else IGNORE_INDEX for t, ok in zip(seq[1:], trained[1:])]
    return {"input_ids": seq[:-1], "labels": labels}


def show_mask(tok, input_ids: list[int], labels: list[int]) -> str:
    """The sequence as text with every trained target in ⟦ ⟧, for lessons and for checking a data set by eye: what
    the loss sees is exactly what is bracketed. (The sequence's last token exists only as labels[-1]; it is shown
    when it is trained, as an answer's closing token is, and left out when it is not.)"""
    from minift.model.gpt import IGNORE_INDEX

    last = [labels[-1]] if labels and labels[-1] != IGNORE_INDEX else []
    seq = list(input_ids) + last
    trained = [False] + [y != IGNORE_INDEX for y in labels]  # token t+1 is labels[t]'s target
    out, inside = [], False
    for tok_id, is_trained in zip(seq, trained):
        if is_trained != inside:
            out.append("⟦" if is_trained else "⟧")
            inside = is_trained
        out.append(tok.decode([tok_id], skip_special=False))
    if inside:
        out.append("⟧")
    return "".join(out)
