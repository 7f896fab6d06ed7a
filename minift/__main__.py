"""`python -m minift` runs the command line, like the `minift` console script."""
import sys

from .cli import main

sys.exit(main())
