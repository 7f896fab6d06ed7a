"""Prompt templates: how an instruction example {"instruction", "input", "output"} is laid out as text.

    ### Instruction:            the Alpaca layout (Taori et al., 2023), with or without its preamble paragraph;
    What is the capital …?      the response follows the response header on a new line, after `response_prefix`
                                (one space by default: docs/sft.md explains why it decides exact match)
    ### Response:
     Paris.

Pure data (no torch), so the command line can list the templates without loading the model code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from minift.errors import ConfigError


@dataclass(frozen=True)
class PromptTemplate:
    """An Alpaca-style prompt layout. Every part is a field, so a different format is one constructor call.

    Layout: preamble, blank line, instruction header + newline + instruction, [blank line, input header +
    newline + input — only when the input is non-empty], blank line, response header + newline. The response text
    follows directly. An empty preamble drops the preamble paragraph (the "plain" template, for short contexts).

    response_prefix is written in front of every response and belongs to the *response* tokens. Decision: one
    space by default. A byte-level BPE gives a word with the space before it its own token (" Berlin"), and in the
    base's corpus answers follow a space ("A: Berlin."). The same word at the start of a line, with no space, is
    spelled with other, rarer tokens ("B", "erlin"), which fine-tuning must then teach word by word; facts it never
    trains on stay out of reach (lesson 05 measures it). `generate_batch` removes the prefix from its answers.
    Set response_prefix="" for a tokenizer or base model that expects the answer flush with the line start.
    """

    preamble: str = "What follows is an instruction describing a task. Write a response that carries it out."
    preamble_with_input: str = ("What follows is an instruction describing a task, with an input that gives "
                                "context. Write a response that carries it out.")
    instruction_header: str = "### Instruction:"
    input_header: str = "### Input:"
    response_header: str = "### Response:"
    response_prefix: str = " "

    def format_prompt(self, instruction: str, input: str = "") -> str:
        has_input = bool(input and input.strip())
        parts = []
        preamble = self.preamble_with_input if has_input else self.preamble
        if preamble:
            parts.append(preamble)
        parts.append(f"{self.instruction_header}\n{instruction}")
        if has_input:
            parts.append(f"{self.input_header}\n{input}")
        parts.append(f"{self.response_header}\n")
        return "\n\n".join(parts)

    def response_text(self, output: str) -> str:
        """The response as it is tokenised: response_prefix + output (an empty output stays empty)."""
        return self.response_prefix + output if output else ""

    def strip_response(self, generated: str) -> str:
        """A generated answer without the response prefix the model was trained to write first."""
        return generated.removeprefix(self.response_prefix) if self.response_prefix else generated

    def to_dict(self) -> dict:
        return asdict(self)

    def encode_prompt(self, tok, instruction: str, input: str = "") -> list[int]:
        """The prompt's token ids (the response follows them directly)."""
        return tok.encode(self.format_prompt(instruction, input))


@dataclass(frozen=True)
class ChatTemplate:
    """ChatML for chat models (minift/finetune/chat.py): the instruction (and its input, after a blank line) is the
    user's message, the output the assistant's answer, which ends with the model's end-of-turn token <|im_end|>
    (the tokenizer's end-of-text, supervised like any EOS). The special tokens are inserted by id, so a prompt
    cannot forge a turn; `system` None gives the model's default system message."""

    system: str | None = None
    response_prefix: str = ""  # the answer starts right after "assistant\n"

    def encode_prompt(self, tok, instruction: str, input: str = "") -> list[int]:
        from minift.finetune.chat import chat_ids

        user = f"{instruction}\n\n{input}" if input and input.strip() else instruction
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": user}]
        return chat_ids(tok, messages, add_generation_prompt=True)

    def response_text(self, output: str) -> str:
        return output

    def strip_response(self, generated: str) -> str:
        return generated.strip()

    def to_dict(self) -> dict:
        return asdict(self)


ALPACA = PromptTemplate()
PLAIN = PromptTemplate(preamble="", preamble_with_input="")
CHATML = ChatTemplate()
TEMPLATES = {"alpaca": ALPACA, "plain": PLAIN, "chatml": CHATML}


AUTO_ALPACA_MIN_CONTEXT = 256


def resolve_template_name(name: str, block_size: int, tok=None) -> str:
    """The template a run uses: "auto" is "chatml" for a chat model (its tokenizer has <|im_start|>), else "alpaca"
    when the model's context holds ≥ 256 tokens, "plain" below.

    Why: the Alpaca preamble costs 42–56 tokens with the tiny base's tokenizer. A `json` prompt with it is 115–134
    tokens, so in a 128-token context every training example loses the start of its prompt (the instruction
    included) and the model learns the format badly; without it the prompts are 59–78 tokens. Other names pass
    through unchanged.
    """
    if name != "auto":
        return name
    if tok is not None and tok.token_to_id("<|im_start|>") is not None:
        return "chatml"
    return "alpaca" if block_size >= AUTO_ALPACA_MIN_CONTEXT else "plain"


def get_template(name_or_template: str | PromptTemplate | ChatTemplate) -> PromptTemplate | ChatTemplate:
    if isinstance(name_or_template, (PromptTemplate, ChatTemplate)):
        return name_or_template
    if name_or_template not in TEMPLATES:
        raise ConfigError(f"unknown prompt template {name_or_template!r}; choose one of {sorted(TEMPLATES)}")
    return TEMPLATES[name_or_template]
