"""Stage 5, fine-tuning: one run that turns the base into a specialist, and what it is measured by.

    templates.py   the prompt layout of an instruction example (pure data)
    chat.py        ChatML conversations as token ids (SmolLM2's chat format)
    sft.py         instruction tuning: prompt masking, EOS as a target, padding, the loss, batched generation
    classify.py    a classification head on the last real token; majority and bag-of-words baselines
    config.py      FinetuneConfig: what defines a run, and its defaults (pure data)
    evaluation.py  scoring a model on its task's test split
    prompting.py   the baseline: a base scored prompted, zero- or few-shot, without fine-tuning
    forgetting.py  the loss on the pretraining text (a real model: general English and general answers), before
                   and after
    record.py      ResultRecord: results.json
    run.py         `finetune(config, out_dir)`: base + task + method → weights, scores and costs
    load.py        a finished run read back, and scored again

Names load on first use (minift/lazy.py): the templates and the config are read by the command line without torch.
"""

from typing import TYPE_CHECKING

from minift.lazy import lazy_exports

lazy_exports(globals(), {
    **dict.fromkeys(["PromptTemplate", "ALPACA", "PLAIN", "TEMPLATES", "get_template"], "minift.finetune.templates"),
    **dict.fromkeys(["encode_example", "encode_dataset", "sft_collate", "collate_right", "left_pad", "sft_loss_fn",
                     "generate_batch"], "minift.finetune.sft"),
    **dict.fromkeys(["Classifier", "classify_loss_fn", "encode_labelled", "collate_classify", "predict",
                     "majority_baseline", "bow_logreg_baseline"], "minift.finetune.classify"),
    **dict.fromkeys(["FinetuneConfig", "DEFAULT_EPOCHS", "FULL_FINETUNING_LR"], "minift.finetune.config"),
    **dict.fromkeys(["evaluate_task", "headline", "context_reserve", "max_new_tokens_for"],
                    "minift.finetune.evaluation"),
    **dict.fromkeys(["forgetting", "pretraining_batches", "lm_val_loss", "general_answers", "greedy_same"],
                    "minift.finetune.forgetting"),
    **dict.fromkeys(["evaluate_prompted", "with_shots", "verbalize"], "minift.finetune.prompting"),
    "ResultRecord": "minift.finetune.record",
    **dict.fromkeys(["chat_ids", "chat_example", "show_mask"], "minift.finetune.chat"),
    "finetune": "minift.finetune.run",
    **dict.fromkeys(["load_finetuned", "evaluate_run"], "minift.finetune.load"),
})

if TYPE_CHECKING:
    from minift.finetune.chat import chat_example, chat_ids, show_mask
    from minift.finetune.classify import (Classifier, bow_logreg_baseline, classify_loss_fn, collate_classify,
                                          encode_labelled, majority_baseline, predict)
    from minift.finetune.config import DEFAULT_EPOCHS, FULL_FINETUNING_LR, FinetuneConfig
    from minift.finetune.evaluation import context_reserve, evaluate_task, headline, max_new_tokens_for
    from minift.finetune.forgetting import forgetting, general_answers, greedy_same, lm_val_loss, pretraining_batches
    from minift.finetune.prompting import evaluate_prompted, verbalize, with_shots
    from minift.finetune.load import evaluate_run, load_finetuned
    from minift.finetune.record import ResultRecord
    from minift.finetune.run import finetune
    from minift.finetune.sft import (collate_right, encode_dataset, encode_example, generate_batch, left_pad,
                                     sft_collate, sft_loss_fn)
    from minift.finetune.templates import ALPACA, PLAIN, TEMPLATES, PromptTemplate, get_template
