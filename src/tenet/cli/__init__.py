"""The ``tenet`` command (a thin shell; the REST client comes with the API)."""

from __future__ import annotations

import argparse
import sys

from tenet import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run tenet's main job")
    demo.add_argument("--check", action="store_true", help="exit non-zero if a check fails")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from tenet.cli.demo import run

        return run()
    return 2


if __name__ == "__main__":
    sys.exit(main())
