"""Stage 1, data: the small world everything is about, the pretraining corpus made from it, the fine-tuning tasks
on it, how their answers are scored, and loaders for your own files. Plain Python: nothing here needs torch.

    world.py      the world as data: countries, animals, a shop's products, people, towns, topics
    corpus.py     the deterministic pretraining corpus (documents about the world); stories.py its stories
    tasks.py      built-in tasks: sentiment, qa (with held-out facts), json, style
    task_data.py  a task (built-in or your file) resolved into train / val / test splits
    metrics.py    accuracy, macro-F1, exact match, JSON validity and schema compliance
    loaders.py    your own JSONL / CSV / text, with file:line errors
"""

from minift.data.corpus import corpus_splits, generate_corpus
from minift.data.loaders import export_jsonl, label_set, load_csv, load_examples, load_jsonl, load_text
from minift.data.metrics import accuracy, exact_match, json_validity, macro_f1, normalize_answer, per_class_f1
from minift.data.task_data import TaskData, load_task_data
from minift.data.tasks import TASKS, TaskSpec, export_task, get_task, load_task

__all__ = [
    "corpus_splits", "generate_corpus", "export_jsonl", "label_set", "load_csv", "load_examples", "load_jsonl",
    "load_text", "accuracy", "exact_match", "json_validity", "macro_f1", "normalize_answer", "per_class_f1",
    "TaskData", "load_task_data", "TASKS", "TaskSpec", "export_task", "get_task", "load_task",
]
