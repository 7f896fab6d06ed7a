"""Stage 6: aligning a fine-tuned model with preferences, written out (docs/alignment.md derives each piece).

Read in this order:

    logprobs.py    sequence log-probs over response tokens only (sum or mean), pairs stacked in one batch
    losses.py      the DPO family (DPO, cDPO, robust, IPO, hinge, SimPO, ORPO, CPO), KTO, Bradley–Terry
    pairs.py       preference pairs (and KTO's unpaired records) as token batches
    objective.py   one objective for the training loop: the loss, its reference model, its logged numbers
    reward.py      a reward model: the body plus a scalar head on the last real token
    reward_run.py  a reward-model run (`minift reward train`), loading one, scoring answers
    judges.py      rule-based judges of the built-in sets, and the win rate
    config.py      AlignConfig (pure data, read by `minift align --help`)
    start.py       where a run starts: the policy (a base, or an SFT run merged) and the preference data
    grpo.py        GRPO / RLOO maths: group advantages, the clipped ratio, k3, the three aggregations
    rl.py          sampling, rule rewards and their sanity check, the RL loss for the training loop
    run.py         `align(config, out_dir)`: SFT first if asked, preference training, scoring, files

The built-in preference sets and the loaders for your own live with the other data: minift/data/preferences.py.
"""
