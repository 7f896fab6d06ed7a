"""`python -m minift ...` is the `minift` command (also what torchrun starts: `torchrun ... -m minift finetune ...`)."""
import sys

from minift.cli import main

sys.exit(main())
