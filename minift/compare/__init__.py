"""The tools on top, first: every method on one task, side by side (`minift compare`).

    run.py     `compare(base, task, methods, seeds, out_dir)`: one fine-tuning run per method and seed, one row each
    report.py  the comparison's markdown table and its two plots
    align.py   `compare_alignment(config, methods, out_dir)`: one alignment run per method on a preference set
    knowledge.py  `rag_vs_finetuning(config, out_dir)`: retrieval against fine-tuning on one stream of updates
"""

from typing import TYPE_CHECKING

from minift.lazy import lazy_exports

lazy_exports(globals(), {
    **dict.fromkeys(["compare", "aggregate", "DEFAULT_METHODS"], "minift.compare.run"),
    **dict.fromkeys(["markdown", "draw_metric_vs_params", "draw_forgetting_vs_metric", "save_plots"],
                    "minift.compare.report"),
    "compare_alignment": "minift.compare.align",
    "rag_vs_finetuning": "minift.compare.knowledge",
})

if TYPE_CHECKING:
    from minift.compare.align import compare_alignment
    from minift.compare.knowledge import rag_vs_finetuning
    from minift.compare.report import draw_forgetting_vs_metric, draw_metric_vs_params, markdown, save_plots
    from minift.compare.run import DEFAULT_METHODS, aggregate, compare
