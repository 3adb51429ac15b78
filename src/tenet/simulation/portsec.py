"""Port security: what an exterior port with ``port_security`` on may send.

The source MAC must be the port's MAC or an allowed pair's; an IPv4/IPv6 source
(or an ARP sender address) must be one of the port's fixed IPs or inside an
allowed pair's prefix (with that pair's MAC, if it names one). DHCP discovery
from 0.0.0.0 is let through so a VM can get its address.
"""

from __future__ import annotations

from ipaddress import ip_address

from tenet.model import Port
from tenet.packets import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, mac_to_str
from tenet.simulation.context import Ctx
from tenet.simulation.view import mac_bytes

DHCP_SERVER_PORT = 67
IPPROTO_UDP = 17


def allowed(ctx: Ctx, port: Port) -> str | None:
    """None if the port may send this packet, else the reason it may not."""
    src = ctx.get("eth_src")
    pairs = [p for p in port.allowed_address_pairs if p.mac is None or mac_bytes(p.mac) == src]
    own_mac = port.mac is not None and mac_bytes(port.mac) == src
    if not own_mac and not any(p.mac is not None for p in pairs):
        return f"source MAC {mac_to_str(src)} is not the port's"
    eth_type = ctx.get("eth_type")
    if eth_type == ETH_TYPE_ARP:
        raw = ctx.get("arp_spa")
    elif eth_type in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        raw = ctx.get("ip_src")
    else:
        return None
    address = ip_address(raw)
    if address.is_unspecified and eth_type == ETH_TYPE_IPV4 and _is_dhcp_request(ctx):
        return None
    if own_mac and address in port.fixed_ips:
        return None
    if any(address in pair.ip for pair in pairs if pair.ip.version == address.version):
        return None
    return f"source address {address} is not allowed on the port"


def _is_dhcp_request(ctx: Ctx) -> bool:
    return bool(ctx.get("ip_proto") == IPPROTO_UDP and ctx.get("l4_dst") == DHCP_SERVER_PORT)
