"""What every risk study does before and after its own work (bias.py, unalign.py, hallucination.py).

    begin(config, out_dir, files, force, model_and_tok)  →  (out, model, tok, template)
        threads and seed set, the output directory checked (nothing is written yet: a study checks its own inputs
        next, then calls `prepare_out_dir`), the base loaded (or the given (model, tok, preset) used) and moved to
        the device, in eval mode, and the prompt template its context allows
    finish(out, record, columns, plot)
        results.json (the record), table.md (its rows), and the study's plot
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from minift.files import PathLike, atomic_write_text, check_out_dir, save_json
from minift.finetune.templates import get_template, resolve_template_name
from minift.tables import markdown_table
from minift.training.device import pick_device, seed_everything, use_threads


def begin(config, out_dir: PathLike, files: tuple[str, ...], force: bool, model_and_tok=None):
    from minift.base.cache import resolve_base

    use_threads(config.threads)
    out = Path(out_dir)
    check_out_dir(out, files, force=force)
    seed_everything(config.seed)
    model, tok, _ = model_and_tok or resolve_base(config.base, progress=False)
    model.to(pick_device(config.device)).eval()
    return out, model, tok, get_template(resolve_template_name("auto", model.config.block_size, tok))


def finish(out: Path, record: dict, columns: list[str], plot: Callable[[Path], None]) -> None:
    save_json(out / "results.json", record)
    atomic_write_text(out / "table.md", markdown_table(record["rows"], columns) + "\n")
    plot(out)
