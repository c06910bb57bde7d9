"""``python3 -m mgit_monitoring``: the command-line interface."""

from __future__ import annotations

import sys

from mgit_monitoring.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
