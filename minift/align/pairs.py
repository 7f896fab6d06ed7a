"""Preference pairs as token batches: the prompt laid out by the run's template, each response scored alone.

    pair {"prompt", "chosen", "rejected"}  →  two SFT-encoded sequences, prompt + chosen + EOS and prompt + rejected
                                               + EOS, targets −100 on the prompt (minift/finetune/sft.py)
    a batch of B pairs                     →  (ids, targets, mask) of 2B rows, the B chosen rows first, right-padded

so that one forward pass scores both sides and `logprobs.split_pair` separates them. A pair whose chosen or
rejected answer would have no target left after truncation is dropped and counted (as SFT drops such examples).
Unpaired records (KTO) encode one sequence each and carry their label.

With precomputed reference log-probs (objective.precompute_reference), each encoded pair also holds "ref":
(log π_ref(y_c), log π_ref(y_r)), computed once before training, collated into a (B, 2) tensor.
"""

from __future__ import annotations

from typing import Sequence

import torch

from minift.finetune.sft import collate_right, encode_example, encode_ids
from minift.finetune.templates import PromptTemplate


def _encode(tok, prompt: str, answer: str, template: PromptTemplate, max_len: int | None) -> dict | None:
    return encode_example(tok, {"instruction": prompt, "input": "", "output": answer}, template, max_len)


def encode_pairs(tok, pairs: Sequence[dict], template: PromptTemplate, max_len: int | None = None
                 ) -> tuple[list[dict], dict]:
    """[{"chosen": enc, "rejected": enc}] and {"n_in", "n_kept", "n_dropped"}."""
    out = []
    for p in pairs:
        c = _encode(tok, p["prompt"], p["chosen"], template, max_len)
        r = _encode(tok, p["prompt"], p["rejected"], template, max_len)
        if c is not None and r is not None:
            out.append({"chosen": c, "rejected": r})
    return out, {"n_in": len(pairs), "n_kept": len(out), "n_dropped": len(pairs) - len(out)}


def encode_unpaired(tok, records: Sequence[dict], template: PromptTemplate, max_len: int | None = None
                    ) -> tuple[list[dict], dict]:
    """[{"seq": enc, "label": bool, "prompt_ids", "response_ids"}] for KTO (the ids kept to build mismatched
    prompt/completion pairs for its reference point), and the same counts as `encode_pairs`."""
    out = []
    for rec in records:
        prompt_ids = template.encode_prompt(tok, rec["prompt"], "")
        response_ids = tok.encode(template.response_text(rec["completion"])) + [tok.eos_id]
        enc = encode_ids(prompt_ids, response_ids, max_len)
        if enc is not None:
            out.append({"seq": enc, "label": bool(rec["label"]), "prompt_ids": prompt_ids,
                        "response_ids": response_ids, "max_len": max_len})
    return out, {"n_in": len(records), "n_kept": len(out), "n_dropped": len(records) - len(out)}


def collate_pairs(pad_id: int):
    """Batch function: B encoded pairs → {"ids", "targets", "mask"} (2B, T), chosen rows first; "ref" (B, 2) when
    the pairs carry precomputed reference log-probs."""
    def collate(batch: Sequence[dict]) -> dict:
        rows = [b["chosen"] for b in batch] + [b["rejected"] for b in batch]
        ids, targets, mask = collate_right(rows, pad_id)
        out = {"ids": ids, "targets": targets, "mask": mask}
        if all("ref" in b for b in batch):
            out["ref"] = torch.tensor([b["ref"] for b in batch], dtype=torch.float64)
        return out
    return collate


def collate_unpaired(pad_id: int):
    """Batch function for KTO: {"ids", "targets", "mask"} (B, T), "label" (B,) bool, and the mismatched batch
    {"kl_ids", "kl_targets", "kl_mask"}: prompt i with completion i + 1 (mod B), whose log-ratio estimates
    KL(π ‖ π_ref) for KTO's reference point z₀ (Ethayarajh et al., 2024)."""
    def collate(batch: Sequence[dict]) -> dict:
        ids, targets, mask = collate_right([b["seq"] for b in batch], pad_id)
        out = {"ids": ids, "targets": targets, "mask": mask, "label": torch.tensor([b["label"] for b in batch])}
        shifted = [encode_ids(b["prompt_ids"], batch[(i + 1) % len(batch)]["response_ids"], b["max_len"])
                   for i, b in enumerate(batch)]
        kl = [s for s in shifted if s is not None]
        if kl:
            out["kl_ids"], out["kl_targets"], out["kl_mask"] = collate_right(kl, pad_id)
        return out
    return collate
