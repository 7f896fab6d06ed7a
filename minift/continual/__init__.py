"""Stage 6, beside alignment: learning updates without forgetting (the update stream and `minift continual` come
with the continual-learning issue).

    regularizers.py   EWC (empirical diagonal Fisher), L2-SP, replay mixing
"""
