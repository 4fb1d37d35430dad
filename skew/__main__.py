"""``python -m skew`` runs the command-line interface."""

import sys

from skew.cli import main

if __name__ == "__main__":
    sys.exit(main())
