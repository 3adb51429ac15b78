"""``python -m tenet``: the same as the ``tenet`` command."""

from __future__ import annotations

import sys

from tenet.cli import main

if __name__ == "__main__":
    sys.exit(main())
