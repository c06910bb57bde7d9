"""``python3 -m mgit_monitoring``: the command-line interface."""

import sys

from mgit_monitoring.cli import main

if __name__ == "__main__":
    sys.exit(main())
