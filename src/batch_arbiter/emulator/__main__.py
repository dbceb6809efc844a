"""Standalone emulator: `python -m batch_arbiter.emulator --port 8787`."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
