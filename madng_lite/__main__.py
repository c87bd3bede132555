"""Command line: ``python -m madng_lite --version | run BENCH | report FILE...`` (see :mod:`madng_lite.cli`)."""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
