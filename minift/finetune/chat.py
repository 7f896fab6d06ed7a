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
    if not messages:
        raise InputError("a conversation needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"message {i} must be {{'role': one of {ROLES}, 'content': str}}, got {m!r}")
    if messages[0]["role"] != "system" and default_system:
        messages = [{"role": "system", "content": default_system}, *messages]
    newline = tok.encode("\n")
    ids = []
    for m in messages:
        ids += [start, *tok.encode(f"{m['role']}\n{m['content']}"), end, *newline]
    if add_generation_prompt:
        ids += [start, *tok.encode("assistant\n")]
    return ids
