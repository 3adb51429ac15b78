"""How fast is ``extract_match``, the flow-match extraction that runs on every upcall?

Run it with ``python -m benchmarks.bench_packets [--seconds S]``. It prints calls per
second for three frames (TCP/IPv4, UDP/IPv6 with an extension header, ARP) and the
ratio to a baseline measured in the same run: one bare ``struct.unpack_from`` of
the Ethernet header, the least any Python parser pays per frame. For scale it
also times ``Packet.parse``, the codec path that builds a record per layer.
A benchmark, not a test: it never fails on a timing (CONVENTIONS.md point 14).
"""

from __future__ import annotations

import argparse
import struct
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from tenet.packets import ARP, TCP, UDP, Ethernet, IPv4, IPv6, IPv6Ext, Packet, extract_match
from tenet.packets.l4 import TCP_ACK, TCP_PSH

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def frames() -> dict[str, bytes]:
    a4, b4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
    a6, b6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
    tcp = Packet(
        Ethernet(MAC2, MAC1, 0x0800),
        IPv4(a4, b4, 6),
        TCP(40000, 443, seq=1, ack=1, flags=TCP_ACK | TCP_PSH),
        bytes(1400),
    )
    udp6 = Packet(
        Ethernet(MAC2, MAC1, 0x86DD),
        IPv6(a6, b6, 17, ext=(IPv6Ext(60, bytes(6)),)),
        UDP(5353, 53),
        bytes(64),
    )
    arp = Packet(Ethernet(b"\xff" * 6, MAC1, 0x0806), ARP.request(MAC1, a4, b4), None, bytes(18))
    return {"TCP/IPv4": tcp.build(), "UDP/IPv6": udp6.build(), "ARP": arp.build()}


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second: the best of five runs of about ``seconds / 5`` each."""
    number = 1000
    while timeit.timeit(call, number=number) < seconds / 50:
        number *= 2
    number *= 10
    best = min(timeit.repeat(call, number=number, repeat=5))
    return number / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="rough time per figure")
    args = parser.parse_args(argv)

    eth_header = struct.Struct("!6s6sH").unpack_from
    print(
        f"{'frame':10} {'bytes':>5} {'baseline/s':>12} {'extract/s':>12} {'ratio':>6} "
        f"{'Packet.parse/s':>15}"
    )
    for name, frame in frames().items():
        baseline = rate(lambda f=frame: eth_header(f, 0), args.seconds)
        fast = rate(lambda f=frame: extract_match(f, 1, 0), args.seconds)
        full = rate(lambda f=frame: Packet.parse(f), args.seconds)
        print(
            f"{name:10} {len(frame):5d} {baseline:12,.0f} {fast:12,.0f} "
            f"{baseline / fast:5.1f}x {full:15,.0f}"
        )
    print("ratio = extract_match time / one bare struct.unpack_from of the Ethernet header")


if __name__ == "__main__":
    main()
