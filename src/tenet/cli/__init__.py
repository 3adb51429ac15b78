"""The ``tenet`` command (a thin shell; the REST client comes with the API)."""

from __future__ import annotations

import argparse
import sys
import uuid
from ipaddress import IPv4Address

from tenet import __version__
from tenet.errors import TenetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run tenet's main job (exits non-zero if a check fails)")
    agent = sub.add_parser("agent", help="run the per-host agent")
    agent.add_argument("--host-id", required=True, type=uuid.UUID, help="this host's id")
    agent.add_argument("--store", required=True, help="store URL, e.g. sqlite:///var/lib/tenet.db")
    agent.add_argument("--underlay", required=True, type=IPv4Address, help="tunnel address")
    agent.add_argument("--vxlan-port", type=int, default=4789, help="VXLAN UDP port")
    agent.add_argument(
        "--datapath",
        choices=("auto", "kernel", "userspace"),
        default="auto",
        help="the fast path: kernel (tc eBPF), userspace (Python), or auto (kernel if it can)",
    )
    args = parser.parse_args(argv)
    if args.command == "agent":
        from tenet.agent.daemon import main as agent_main

        try:
            return agent_main(
                args.host_id, args.store, args.underlay, args.vxlan_port, datapath=args.datapath
            )
        except (TenetError, OSError) as exc:  # bad input or an address not on this host
            parser.exit(2, f"tenet agent: {exc}\n")
    if args.command == "demo":
        from tenet.cli.demo import run

        return run()
    return 2


if __name__ == "__main__":
    sys.exit(main())
