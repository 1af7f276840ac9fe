"""Open the studio in your browser: `uv run launch.py [--workspace DIR] [--project DIR] ...` (see --help)."""

import sys

from studio.ui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
