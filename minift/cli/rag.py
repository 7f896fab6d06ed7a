"""`minift rag index|ask`: a BM25 index over documents, and questions answered with what it retrieves.

    minift rag index --updates 3 --out runs/ix          the first 3 updates of the changing world (data/updates.py)
    minift rag index --docs notes.txt --out runs/ix --add     one document per line, appended to an index
    minift rag ask runs/ix --question "How much is the atlas now?" [--model tiny]
    minift rag compare --base tiny --out runs/versus        retrieval vs fine-tuning on the same stream, side by side

The parser imports nothing heavy; the commands import the retrieval stage when they run.
"""

from __future__ import annotations

from pathlib import Path

from minift.cli.arguments import _positive_float, _positive_int, _sub
from minift.errors import ConfigError, MissingFileError


def add_rag_parser(sub) -> None:
    s = _sub(sub, "rag", "retrieval: build a BM25 index over documents, ask questions with retrieved context")
    rsub = s.add_subparsers(dest="rag_command", metavar="ACTION", required=True)
    i = _sub(rsub, "index", "index documents: the changing world's updates, or a text file (one document per line)")
    what = i.add_mutually_exclusive_group(required=True)
    what.add_argument("--updates", type=_positive_int, help="the first N updates of the built-in update stream")
    what.add_argument("--docs", help="a text file, one document per line")
    i.add_argument("--paraphrases", type=_positive_int, default=3, help="documents per fact in the update stream")
    i.add_argument("--out", required=True, help="index directory")
    i.add_argument("--add", action="store_true", help="append to the index already in --out")
    i.set_defaults(func=cmd_rag_index)
    a = _sub(rsub, "ask", "the documents BM25 ranks best for a question, and with --model an answer that reads them")
    a.add_argument("index_dir", help="an index directory (from `minift rag index`)")
    a.add_argument("--question", required=True)
    a.add_argument("--k", type=_positive_int, default=3, help="documents to retrieve")
    a.add_argument("--model", default=None, help="a preset, model directory or fine-tuning run to answer with")
    a.add_argument("--max-new-tokens", type=_positive_int, default=24)
    a.set_defaults(func=cmd_rag_ask)
    c = _sub(rsub, "compare", "retrieval vs fine-tuning on the same stream of updates: fresh and changed facts, time "
             "to absorb an update, answer latency, strict JSON (docs/continual.md)")
    c.add_argument("--base", default="tiny", help="a preset, smollm2 or a model directory")
    c.add_argument("--updates", type=_positive_int, default=4)
    c.add_argument("--facts", type=_positive_int, default=6, help="facts per update")
    c.add_argument("--paraphrases", type=int, choices=range(1, 5), default=4, metavar="1-4",
                   help="k of the fine-tuning arm \"ft ×k\" (default: 4)")
    c.add_argument("--k", type=_positive_int, default=2, help="documents retrieved (default: 2)")
    c.add_argument("--epochs", type=_positive_float, default=20.0,
                   help="continual fine-tuning: passes over each update")
    c.add_argument("--lr", type=_positive_float, default=None, help="continual fine-tuning's lr (unset: its default)")
    c.add_argument("--reader-steps", type=_positive_int, default=600,
                   help="the reader's one-off fine-tune, batches of 8 (default: 600)")
    c.add_argument("--reader-streams", type=_positive_int, default=20,
                   help="other streams the reader learns from (default: 20)")
    c.add_argument("--reader-lr", type=_positive_float, default=1e-3)
    c.add_argument("--json-steps", type=_positive_int, default=150,
                   help="the json task's fine-tune, batches of 8 (default: 150)")
    c.add_argument("--json-lr", type=_positive_float, default=5e-4)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=_positive_int, default=None)
    c.add_argument("--out", required=True)
    c.add_argument("--force", action="store_true", help="overwrite results already in --out")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_rag_compare)


def cmd_rag_index(args) -> int:
    from minift.retrieval.bm25 import BM25Index
    from minift.retrieval.rag import load_index, save_index

    if args.updates is not None:
        from minift.data.updates import update_stream

        docs = [d for u in update_stream(args.updates, paraphrases=min(args.paraphrases, 4)) for d in u.documents]
    else:
        path = Path(args.docs)
        if not path.is_file():
            raise MissingFileError(f"{path}: no such file")
        docs = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not docs:
            raise ConfigError(f"{path} holds no documents (one per line)")
    index = load_index(args.out) if args.add else BM25Index()
    index.add(docs)
    save_index(index, args.out)
    print(f"indexed {len(docs)} documents ({len(index)} in {args.out})")
    return 0


def cmd_rag_ask(args) -> int:
    from minift.retrieval.rag import context_budget, load_index, rag_prompt

    index = load_index(args.index_dir)
    hits = index.top_k(args.question, args.k)
    for i, score in hits:
        print(f"{score:6.2f}  {index.docs[i]}")
    if args.model is None:
        return 0
    from minift.base.cache import resolve_base
    from minift.finetune.sft import generate_batch
    from minift.finetune.templates import get_template, resolve_template_name

    path = Path(args.model)
    if (path / "finetune.json").is_file():
        from minift.finetune.load import load_finetuned

        model, tok, config = load_finetuned(path)
        name = config.template
    else:
        model, tok, _ = resolve_base(str(path.resolve()) if path.exists() else args.model, progress=False)
        name = resolve_template_name("auto", model.config.block_size, tok)
    if not hasattr(model, "generate"):
        raise ConfigError(f"{args.model} is a classifier; answer with a model that generates text")
    template = get_template(name)
    budget = context_budget(model.config.block_size, tok, template, args.max_new_tokens)
    prompt, used = rag_prompt(args.question, index, lambda t: len(tok.encode(t)), budget, args.k)
    answer = generate_batch(model, tok, [prompt], args.max_new_tokens, template)[0]
    print(f"\nwith {len(used)} of the documents in a {budget}-token budget: {answer.strip()}")
    return 0


def cmd_rag_compare(args) -> int:
    from minift.retrieval.strategy import choose_ai_strategy
    from minift.compare.knowledge import COLUMNS, JSON_COLUMNS, VersusConfig, rag_vs_finetuning
    from minift.tables import markdown_table

    cfg = VersusConfig(base=args.base, n_updates=args.updates, facts=args.facts, paraphrases=args.paraphrases,
                       k=args.k, epochs=args.epochs, lr=args.lr, reader_streams=args.reader_streams,
                       reader_steps=args.reader_steps, reader_lr=args.reader_lr, json_steps=args.json_steps,
                       json_lr=args.json_lr, seed=args.seed, threads=args.threads)
    record = rag_vs_finetuning(cfg, args.out, force=args.force, progress=not args.quiet)
    print(markdown_table(record["rows"], COLUMNS))
    print()
    print(markdown_table(record["json"], JSON_COLUMNS))
    print()
    print(choose_ai_strategy(needs_knowledge=True, changes_often=True, needs_behaviour=True, evidence=record))
    print(f"wrote {args.out}/ (versus.json, table.md, json.md, ft-x1/, ft-xk/)")
    return 0
