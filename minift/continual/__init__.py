"""Stage 6, beside alignment: fine-tuning on a stream of updates, and keeping what was learned (docs/continual.md).

    config.py        ContinualConfig: the method, the mitigations and their strengths (pure data, for the CLI)
    regularizers.py  EWC (empirical diagonal Fisher), L2-SP, replay mixing
    measures.py      what the model knows after an update: new, earlier, changed and stale facts; the plots
    run.py           `continual(config, out)`: train on each update in turn, measure after each
    sweep.py         several variants on the same stream, and the learning-vs-forgetting picture
"""
