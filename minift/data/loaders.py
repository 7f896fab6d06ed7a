"""Fine-tuning data: the shapes of an example, and loaders that refuse bad input loudly.

Four shapes, each a plain dict so it can be written to and read from JSONL unchanged:

    instruction   {"instruction": str, "input": str (may be ""), "output": str}   → supervised fine-tuning (minift/finetune/sft.py)
    chat          {"messages": [{"role": "system"|"user"|"assistant", "content": str}, …]}
                                                                                  → supervised fine-tuning of a chat model on
                                                                                    whole conversations (finetune/chat.py)
    labelled      {"text": str, "label": str}                                     → classification (classify.py)
    text          {"text": str}                                                   → language modelling

A conversation (JSONL only: a CSV cell cannot hold a list) may have several user/assistant turns; every assistant
turn is trained, and the last message must be an assistant's: it is the answer a held-out conversation is scored
on (`reference_answer`). A system message may only come first.

Loaders: `load_jsonl` (one JSON object per line, shape detected from the first record), `load_csv` (a header row
names the columns, same field names), `load_text` (plain text; documents are separated by blank lines).

Decisions, stated once:
  * A malformed record stops loading with an `InputError` naming the file, the line and the field,
    e.g. "reviews.jsonl:7: field 'output' missing". Nothing is skipped silently: blank lines are the only thing
    skipped, and they are counted in the `LoadReport` every loader attaches to its result (`result.report`).
  * Every record of a file has the file's shape (detected from the first record). Unknown extra fields are
    ignored and their names listed in the report.
  * Labels are strings; an integer label (0/1 from another tool) is converted with str(). A labelled set with a
    single class fails (a classifier cannot learn from it); with `labels=` given, an unknown label fails at its line.
  * An empty file (no records) fails.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, TypedDict

from minift.errors import InputError, MissingFileError
from minift.files import atomic_path


class InstructionExample(TypedDict):
    instruction: str
    input: str
    output: str


class LabelledExample(TypedDict):
    text: str
    label: str


# required fields, optional fields (with defaults) of each shape
SHAPES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "instruction": (("instruction", "output"), {"input": ""}),
    "labelled": (("text", "label"), {}),
    "text": (("text",), {}),
    "chat": (("messages",), {}),
}
ROLES = ("system", "user", "assistant")


@dataclass
class LoadReport:
    """What a loader did: how many records it kept and what it skipped (so nothing vanishes unnoticed)."""

    source: str
    kind: str
    n_examples: int = 0
    n_blank_skipped: int = 0
    ignored_fields: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        s = f"{self.source}: {self.n_examples} {self.kind} examples, {self.n_blank_skipped} blank lines skipped"
        if self.ignored_fields:
            s += f", ignored fields {self.ignored_fields}"
        if self.label_counts:
            s += f", labels {dict(sorted(self.label_counts.items()))}"
        return s


class Examples(list):
    """A plain list of example dicts that also carries the `LoadReport` of how it was loaded."""

    report: LoadReport


def detect_shape(record: dict) -> str:
    """'instruction' if the record has `instruction` or `output`, 'labelled' if it has `label`, 'text' if only
    `text`, 'chat' if it has `messages`; otherwise an InputError (raised by the caller with a location)."""
    if "messages" in record:
        return "chat"
    if "instruction" in record or "output" in record:
        return "instruction"
    if "label" in record:
        return "labelled"
    if "text" in record:
        return "text"
    raise ValueError(f"cannot tell the shape from fields {sorted(record)}: expected 'instruction' + 'output' "
                     "(optional 'input'), or 'text' + 'label', or 'text', or 'messages'")


def normalise_record(record: dict, kind: str, where: str, labels: Sequence[str] | None = None) -> dict:
    """Check one record against its shape and return a clean copy with only the shape's fields.

    `where` prefixes every error ("file.jsonl:7" or "examples[3]"), so the message points at the bad record.
    """
    if kind == "chat":
        return {"messages": _conversation(record.get("messages"), where)}
    required, optional = SHAPES[kind]
    out = {}
    for name in required:
        if name not in record or record[name] is None:
            raise InputError(f"{where}: field '{name}' missing (a {kind} example needs {' and '.join(required)})")
    for name in (*required, *optional):
        value = record.get(name, optional.get(name))
        if name == "label" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is None:  # an optional field written as null
            value = optional[name]
        if not isinstance(value, str):
            raise InputError(f"{where}: field '{name}' is not a string (got {type(value).__name__}: {value!r})")
        out[name] = value
    for name in ("instruction", "text", "label"):
        if name in out and not out[name].strip():
            raise InputError(f"{where}: field '{name}' is empty")
    if labels is not None and "label" in out and out["label"] not in labels:
        raise InputError(f"{where}: field 'label' has unknown value {out['label']!r}; allowed: {', '.join(labels)}")
    return out


def _conversation(messages, where: str) -> list[dict]:
    """A clean copy of a conversation's messages, or an InputError naming the record and the message."""
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: field 'messages' must be a non-empty list of {{\"role\", \"content\"}} objects "
                         "(conversations need JSONL: a CSV cell cannot hold a list)")
    out = []
    for i, m in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(m, dict):
            raise InputError(f"{at} is not an object (got {type(m).__name__})")
        if m.get("role") not in ROLES:
            raise InputError(f"{at}: field 'role' must be one of {', '.join(ROLES)} (got {m.get('role')!r})")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise InputError(f"{at}: field 'content' must be a non-empty string")
        if m["role"] == "system" and i > 0:
            raise InputError(f"{at}: a system message may only come first")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "user" for m in out):
        raise InputError(f"{where}: a conversation needs at least one user message")
    if out[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's (the answer to learn and to score), "
                         f"got {out[-1]['role']!r}")
    return out


def reference_answer(example: dict) -> str:
    """The answer an example is scored on: an instruction's output, a conversation's last (assistant) message."""
    return example["messages"][-1]["content"] if "messages" in example else example["output"]


def check_examples(examples: Sequence[dict], labels: Sequence[str] | None = None,
                   source: str = "examples") -> Examples:
    """Validate in-memory examples (e.g. from your own code) exactly as the loaders validate a file."""
    records = [(f"{source}[{i}]", r) for i, r in enumerate(examples)]
    return _finish(records, source, labels, n_blank=0)


def _finish(records: list[tuple[str, object]], source: str, labels, n_blank: int) -> Examples:
    """Shared tail of every loader: shape detection, per-record checks, label checks, the report."""
    if not records:
        raise InputError(f"{source}: no examples found (the file is empty or only blank lines)")
    where0, first = records[0]
    if not isinstance(first, dict):
        raise InputError(f"{where0}: expected one JSON object per line (JSONL) like {{\"text\": ..., "
                         f"\"label\": ...}}, got {type(first).__name__}")
    try:
        kind = detect_shape(first)
    except ValueError as e:
        raise InputError(f"{where0}: {e}") from None
    known = set(SHAPES[kind][0]) | set(SHAPES[kind][1])
    out, ignored = Examples(), set()
    for where, rec in records:
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        ignored |= set(rec) - known
        out.append(normalise_record(rec, kind, where, labels))
    if kind == "text" and "label" in ignored:  # the first record decided "text" but forgot its label
        raise InputError(f"{where0}: field 'label' missing (other records have one, so this is a labelled set)")
    report = LoadReport(source=source, kind=kind, n_examples=len(out), n_blank_skipped=n_blank,
                        ignored_fields=sorted(ignored))
    if kind == "labelled":
        counts = Counter(r["label"] for r in out)
        report.label_counts = dict(counts)
        if len(counts) < 2:
            raise InputError(f"{source}: every example has label {next(iter(counts))!r}; a classifier needs at "
                             "least two classes (check the label column, or that the file is not a filtered subset)")
    if kind == "instruction" and not any(r["output"].strip() for r in out):
        raise InputError(f"{source}: every example's 'output' is empty, so there is no answer to learn (check the "
                         "column name: it must be 'output')")
    out.report = report
    return out


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    return path


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """(line number, text) pairs, decoding each line as UTF-8 so a bad byte is reported at its line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path.name}:{lineno}: not valid UTF-8 text; re-save the file as UTF-8") from None


def load_jsonl(path, labels: Sequence[str] | None = None) -> Examples:
    """Load one JSON object per line. Returns `Examples` (a list of dicts) with `.report`."""
    path = _existing(path)
    records, n_blank = [], 0
    for lineno, line in _lines(path):
        if not line.strip():
            n_blank += 1
            continue
        try:
            records.append((f"{path.name}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise InputError(f"{path.name}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    return _finish(records, path.name, labels, n_blank)


def load_csv(path, labels: Sequence[str] | None = None) -> Examples:
    """Load a CSV file whose header row names the fields (`instruction,input,output` or `text,label` or `text`).

    Line numbers are physical lines of the file (a quoted cell may span several; the record's last line is named).
    """
    path = _existing(path)
    records, n_blank, header = [], 0, None
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    n_blank += 1
                    continue
                if header is None:
                    header = [h.strip() for h in row]
                    continue
                where = f"{path.name}:{reader.line_num}"
                if len(row) != len(header):
                    raise InputError(f"{where}: has {len(row)} fields but the header has {len(header)} "
                                     f"({', '.join(header)}); quote cells that contain commas")
                records.append((where, dict(zip(header, row))))
        except csv.Error as e:
            raise InputError(f"{path.name}:{reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: not valid UTF-8 text; re-save the file as UTF-8") from None
    if header is not None and not records:
        raise InputError(f"{path.name}: the file has a header but no examples")
    return _finish(records, path.name, labels, n_blank)


def load_text(path) -> Examples:
    """Plain text for language modelling: documents are separated by one or more blank lines.

    Returns `Examples` of {"text": document} (lines of a document joined with "\\n"); `.report` counts the blank
    separator lines.
    """
    path = _existing(path)
    docs, current, n_blank = Examples(), [], 0
    for _, line in _lines(path):
        line = line.rstrip("\r\n")
        if line.strip():
            current.append(line)
            continue
        n_blank += 1
        if current:
            docs.append({"text": "\n".join(current)})
            current = []
    if current:
        docs.append({"text": "\n".join(current)})
    if not docs:
        raise InputError(f"{path.name}: no text found (the file is empty or only blank lines)")
    docs.report = LoadReport(source=path.name, kind="text", n_examples=len(docs), n_blank_skipped=n_blank)
    return docs


def load_examples(path, labels: Sequence[str] | None = None) -> Examples:
    """Pick the loader from the file extension: .jsonl/.json → JSONL, .csv → CSV, anything else → plain text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return load_jsonl(path, labels)
    if suffix == ".csv":
        return load_csv(path, labels)
    return load_text(path)


def export_jsonl(examples: Iterable[dict], path) -> int:
    """Write examples as JSONL (one object per line, UTF-8, keys sorted), atomically. Returns the count written."""
    lines = [json.dumps(ex, ensure_ascii=False, sort_keys=True) for ex in examples]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def label_set(examples: Sequence[dict]) -> list[str]:
    """The sorted distinct labels of labelled examples (the class order a classifier uses)."""
    return sorted({ex["label"] for ex in examples})
