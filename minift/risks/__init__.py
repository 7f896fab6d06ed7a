"""Stage 7, beside compare: what goes wrong in fine-tuning, each risk a measured study (docs/risks.md).

    config.py         BiasConfig, UnalignConfig, HallucinationConfig (pure data, for the CLI)
    measures.py       answer log-probs and choices, greedy vs sampled decisions, bias and its amplification (Zhao
                      et al., 2017), the counterfactual flip rate, the refusal detector
    bias.py           `bias_study`: fine-tuning on hiring decisions skewed by town, with and without mitigations
    unalign.py        `unalign_study`: a taught refusal, then k harmful, identity-shifting or benign examples
                      (Qi et al., 2023)
    hallucination.py  `hallucination_study`: facts the base cannot know, and confident answers about strangers
                      (Gekhman et al., 2024)
    study.py          what every study does first (threads, seed, output directory, base, template) and last
                      (results.json, table.md, the plot)

Their data lives in minift/data (hiring.py, safety.py, unknown.py); `minift risks bias|unalign|hallucination`
runs them.
"""
