"""Stage 6: aligning a fine-tuned model with preferences, written out (docs/alignment.md derives each piece).

Read in this order:

    logprobs.py    sequence log-probs over response tokens only (sum or mean), pairs stacked in one batch
    losses.py      the DPO family (DPO, cDPO, robust, IPO, hinge, SimPO, ORPO, CPO), KTO, Bradley–Terry
    pairs.py       preference pairs (and KTO's unpaired records) as token batches
    objective.py   one objective for the training loop: the loss, its reference model, its logged numbers
    reward.py      a reward model: the body plus a scalar head on the last real token
    judges.py      rule-based judges of the built-in sets, and the win rate
    config.py      AlignConfig (pure data, read by `minift align --help`)
    run.py         `align(config, out_dir)`: SFT first if asked, preference training, scoring, files

The built-in preference sets and the loaders for your own live with the other data: minift/data/preferences.py.
"""
