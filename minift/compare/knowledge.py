"""Retrieval against fine-tuning on one stream of updates, side by side: `rag_vs_finetuning(VersusConfig(...), out)`.

Every arm answers the same held-out questions after the last update (data/updates.questions_after):

    closed book       the base, the question alone
    prompt            the base with the fact's own document in the prompt: the best any retriever could do
    rag               the base with BM25's top documents (retrieval/rag.py), the index grown update by update
    rag + reader      the base fine-tuned ONCE to answer from a context (on other streams, other values: it learns
                      to read, not the facts), then given BM25's documents
    ft ×1 / ft ×k     continual full fine-tuning on every update (continual/run.py), one document per fact vs k
    ft ×k + rag       that fine-tuned model, also given BM25's documents

and the measures: accuracy on every fact known after the last update (all), on the last update's facts (fresh),
on every fact that replaced a value (changed) and the share answered with the replaced value (stale); the time to
absorb one update (adding its documents to the index vs training on it); the answer latency (greedy answers,
batched, per question); and a behaviour, not a fact — strict JSON on the json task: the base with the instruction
alone, with the most similar training example retrieved into the prompt where it fits (retrieval can show the
format; `examples shown` counts the prompts that had room), and after a short fine-tune on the task's examples.

The table backs `choose_ai_strategy` (retrieval/strategy.py); docs/continual.md reads the measured numbers.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from minift.continual.config import ContinualConfig
from minift.continual.measures import score_answers
from minift.continual.run import continual
from minift.data.tasks import JSON_SCHEMA, load_task
from minift.data.metrics import json_metrics
from minift.data.updates import questions_after, update_stream
from minift.errors import ConfigError
from minift.files import PathLike, atomic_write_text, check_out_dir, prepare_out_dir, save_json
from minift.finetune.inplace import train_in_place
from minift.finetune.sft import generate_batch
from minift.finetune.templates import get_template, resolve_template_name
from minift.retrieval.bm25 import BM25Index
from minift.retrieval.rag import context_budget, rag_prompt
from minift.tables import markdown_table
from minift.training.device import seed_everything, use_threads

FILES = ("versus.json", "table.md", "json.md", "ft-x1", "ft-xk")
COLUMNS = ["arm", "all", "fresh", "changed", "stale", "absorb s/update", "answer ms"]
JSON_COLUMNS = ["arm", "json valid", "schema ok", "examples shown", "s to absorb"]


@dataclass
class VersusConfig:
    base: str = "tiny"
    n_updates: int = 4
    facts: int = 6
    paraphrases: int = 4           # k of "ft ×k" (and the documents per fact the index holds)
    k: int = 2                     # documents retrieved
    epochs: float = 20.0           # continual fine-tuning, per update
    lr: float | None = None        # continual fine-tuning (None: its default)
    reader_streams: int = 20       # other streams the reader learns to read from (8 updates each)
    reader_steps: int = 600        # the reader's one-off fine-tune (batches of 8)
    reader_lr: float = 1e-3
    json_steps: int = 150          # the json task's fine-tune (batches of 8: 3 passes over its 400 examples)
    json_lr: float = 5e-4
    max_new_tokens: int = 48        # an instruct model explains before it answers: 8 tokens cut SmolLM2 off
    n_json: int = 50               # json test prompts scored
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        if not 1 <= self.facts <= 12 or self.n_updates < 1:
            raise ConfigError(f"facts per update must be 1 to 12 and updates ≥ 1, got {self.facts} and "
                              f"{self.n_updates}")
        if not 1 <= self.paraphrases <= 4 or min(self.k, self.reader_streams, self.reader_steps, self.json_steps) < 1:
            raise ConfigError("paraphrases must be 1 to 4; k, reader_streams, reader_steps and json_steps ≥ 1")
        if min(self.reader_lr, self.json_lr) <= 0 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("learning rates must be > 0")


def rag_vs_finetuning(config: VersusConfig, out_dir: PathLike, force: bool = False, progress: bool = True) -> dict:
    """Run every arm (module docstring); returns versus.json's record."""
    from minift.base.cache import resolve_base

    use_threads(config.threads)
    out = Path(out_dir)
    check_out_dir(out, FILES, force=force)
    seed_everything(config.seed)
    base, tok, preset = resolve_base(config.base, progress=False)
    base.eval()
    template = get_template(resolve_template_name("auto", base.config.block_size, tok))
    budget = context_budget(base.config.block_size, tok, template, config.max_new_tokens)
    count = lambda text: len(tok.encode(text))  # noqa: E731
    stream = update_stream(config.n_updates, config.facts, config.paraphrases, seed=config.seed)
    last = len(stream) - 1
    questions = questions_after(stream, last)
    out = prepare_out_dir(out, FILES, force=force)

    index, index_seconds = BM25Index(), []
    for up in stream:  # absorbing an update by retrieval: adding its documents
        t0 = time.perf_counter()
        index.add(up.documents)
        index_seconds.append(time.perf_counter() - t0)
    rag = [rag_prompt(q["instruction"], index, count, budget, config.k)[0] for q in questions]
    gold = [_gold_prompt(stream, q) for q in questions]
    plain = [q["instruction"] for q in questions]
    absorb_index = sum(index_seconds) / len(index_seconds)

    def row(arm: str, model, prompts: list[str], absorb: float | None) -> dict:
        generate_batch(model, tok, prompts[:2], 2, template)  # warm-up, untimed: the first call pays for allocation
        t0 = time.perf_counter()
        answers = generate_batch(model, tok, prompts, config.max_new_tokens, template)
        ms = 1000 * (time.perf_counter() - t0) / len(prompts)
        s = score_answers(answers, questions, last)
        return {"arm": arm, "all": s["all"], "fresh": s["new"], "changed": s["changed"], "stale": s["stale"],
                "absorb s/update": absorb, "answer ms": ms, "answers": answers}

    rows = [row("closed book", base, plain, 0.0), row("prompt", base, gold, None), row("rag", base, rag, absorb_index)]
    reader = _reader(base, tok, template, config, count, budget, progress)
    rows.append(row("rag + reader", reader["model"], rag, absorb_index))
    for name, k in dict.fromkeys((("ft ×1", 1), (f"ft ×{config.paraphrases}", config.paraphrases))):
        model = copy.deepcopy(base)
        cfg = ContinualConfig(base=config.base, n_updates=config.n_updates, facts=config.facts, paraphrases=k,
                              epochs=config.epochs, lr=config.lr, max_new_tokens=config.max_new_tokens,
                              seed=config.seed)
        record = continual(cfg, out / ("ft-x1" if k == 1 else "ft-xk"), force=force, progress=progress,
                           model_and_tok=(model, tok, preset))
        model.eval()
        rows.append(row(name, model, plain, record["summary"]["seconds_per_update"]))
    rows.append(row(f"ft ×{config.paraphrases} + rag", model, rag, absorb_index +
                    record["summary"]["seconds_per_update"]))
    json_rows = _json_arms(base, tok, template, config, progress)
    record = {"config": asdict(config), "rows": rows, "json": json_rows, "questions": questions,
              "reader": {k: v for k, v in reader.items() if k != "model"}}
    save_json(out / "versus.json", record)
    atomic_write_text(out / "table.md", markdown_table(rows, COLUMNS) + "\n")
    atomic_write_text(out / "json.md", markdown_table(json_rows, JSON_COLUMNS) + "\n")
    return record


def _gold_prompt(stream, q: dict) -> str:
    """The question with the first document of its fact's latest statement in front (the retriever's best case)."""
    up = stream[q["update"]]
    doc = next(d for d, key in zip(up.documents, up.doc_keys) if key == q["key"])
    return f"Context:\n{doc}\n\nQuestion: {q['instruction']}"


def _reader(base, tok, template, config: VersusConfig, count, budget: int, progress: bool) -> dict:
    """A copy of the base fine-tuned to answer from retrieved documents, on `reader_streams` streams with other seeds
    (other prices, days and towns, each value in many contexts: copying from the context is the only thing that
    transfers; with a single other stream a small model memorises that stream's values instead)."""
    examples = []
    for s in range(config.reader_streams):
        other = update_stream(8, config.facts, config.paraphrases, seed=config.seed + 1000 + s)
        index = BM25Index()
        for up in other:
            index.add(up.documents)
        examples += [{"instruction": rag_prompt(q["instruction"], index, count, budget, config.k)[0], "input": "",
                      "output": q["output"]} for up in other for q in up.train]
    model = copy.deepcopy(base)
    seconds = train_in_place(model, tok, template, examples, config.reader_steps, config.reader_lr,
                             seed=config.seed, progress=progress, desc="reader").elapsed_s
    return {"model": model.eval(), "examples": len(examples), "steps": config.reader_steps, "seconds": seconds}


def _json_arms(base, tok, template, config: VersusConfig, progress: bool) -> list[dict]:
    """Strict JSON on the json task's test posts: instruction only, one retrieved training example in the prompt,
    a short fine-tune."""
    train_split, test = load_task("json", "train", config.seed), load_task("json", "test", config.seed)[:config.n_json]
    index = BM25Index()
    t0 = time.perf_counter()
    index.add([ex["input"] for ex in train_split])
    index_s = time.perf_counter() - t0

    def shown(ex: dict, example: dict | None) -> dict:
        if example is None:
            return {"instruction": ex["instruction"], "input": ex["input"]}
        demo = f"Example post: {example['input']}\nExample answer: {example['output']}\n\n"
        return {"instruction": demo + ex["instruction"], "input": ex["input"]}

    def score(arm, model, prompts, absorb, shown_n=0):
        answers = generate_batch(model, tok, prompts, 32, template)
        m = json_metrics(answers, JSON_SCHEMA)
        return {"arm": arm, "json valid": m["json_validity"], "schema ok": m["json_compliance"],
                "s to absorb": absorb, "examples shown": shown_n, "sample": answers[0]}

    room = base.config.block_size - 32  # the prompt as laid out by the template, and a 32-token answer
    retrieved, n_shown = [], 0
    for ex in test:  # the most similar training post whose example still fits the context (counted: a small
        hits = [train_split[i] for i, _ in index.top_k(ex["input"], 3)]  # context may have room for none)
        fits = [h for h in hits if len(template.encode_prompt(tok, **shown(ex, h))) <= room]
        retrieved.append(shown(ex, fits[0] if fits else None))
        n_shown += bool(fits)
    rows = [score("instruction only", base, [shown(ex, None) for ex in test], 0.0),
            score("retrieved example", base, retrieved, index_s, n_shown)]
    model = copy.deepcopy(base)
    seconds = train_in_place(model, tok, template, train_split, config.json_steps, config.json_lr,
                             seed=config.seed, progress=progress, desc="json").elapsed_s
    rows.append(score(f"fine-tuned ({config.json_steps} steps)", model.eval(), [shown(ex, None) for ex in test],
                      seconds))
    return rows
