"""DHCP messages (RFC 2131, options of RFC 2132, classless routes of RFC 3442).

Owns the DHCP codec: the BOOTP header, the magic cookie and the options.

Invariants:

* the options the agent's DHCP server and its tests need are typed fields
  (see ``_TYPED``); ``None`` (or ``()`` for lists) means absent. Every other
  option is kept raw in ``options`` as (code, value) pairs, codes unique, in
  the order of their first appearance;
* ``parse`` concatenates options that appear more than once (RFC 3396) and
  raises PacketError when a typed option has a malformed value; ``build``
  splits values longer than 255 bytes the same way;
* ``build`` writes the typed options first, in ``_TYPED`` order (message type
  first), then the raw ones, then the end option, and pads the message to the
  300-byte BOOTP minimum. So ``build(parse(build(m))) == build(m)``;
* ``sname`` and ``file`` are C strings: parse stops at the first NUL, build
  refuses a NUL inside. ``hlen`` is ``len(chaddr)`` (at most 16).
  Option overload (52) is not interpreted.

Wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+---------------+---------------+
    |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
    +---------------+---------------+---------------+---------------+
    |                            xid (4)                            |
    +-------------------------------+-------------------------------+
    |           secs (2)            |  flags (2; 0x8000 broadcast)  |
    +-------------------------------+-------------------------------+
    |  ciaddr (4)  |  yiaddr (4)  |  siaddr (4)  |  giaddr (4)      |
    +---------------------------------------------------------------+
    |                     chaddr (16)                               |
    +---------------------------------------------------------------+
    |                     sname  (64)                               |
    +---------------------------------------------------------------+
    |                     file   (128)                              |
    +---------------------------------------------------------------+
    |                magic cookie 99.130.83.99 (4)                  |
    +---------------+---------------+-------------------------------+
    |  code         |  length       |  value ... | ... | 255 (end)  |
    +---------------+---------------+-------------------------------+
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Self

from tenet.packets.wire import Buffer, check, check_ipv4, guarded, need

DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000

DHCPDISCOVER = 1
DHCPOFFER = 2
DHCPREQUEST = 3
DHCPDECLINE = 4
DHCPACK = 5
DHCPNAK = 6
DHCPRELEASE = 7
DHCPINFORM = 8

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN_NAME = 15
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_LIST = 55
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_CLIENT_ID = 61
OPT_CLASSLESS_ROUTES = 121
OPT_END = 255

MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTP_HEADER_LEN = 236
BOOTP_MIN_LEN = 300
ANY = IPv4Address(0)

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
Route = tuple[IPv4Network, IPv4Address]


@dataclass(frozen=True, slots=True, kw_only=True)
class DHCP:
    """A DHCP message. Typed option fields are ``None`` (or empty) when absent."""

    op: int = BOOTREQUEST
    xid: int = 0
    chaddr: bytes = bytes(6)
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ANY
    yiaddr: IPv4Address = ANY
    siaddr: IPv4Address = ANY
    giaddr: IPv4Address = ANY
    sname: bytes = b""
    file: bytes = b""
    message_type: int | None = None
    server_id: IPv4Address | None = None
    lease_time: int | None = None
    renewal_time: int | None = None
    rebinding_time: int | None = None
    subnet_mask: IPv4Address | None = None
    routers: tuple[IPv4Address, ...] = ()
    dns_servers: tuple[IPv4Address, ...] = ()
    hostname: str | None = None
    domain_name: str | None = None
    mtu: int | None = None
    broadcast_address: IPv4Address | None = None
    requested_ip: IPv4Address | None = None
    parameter_request_list: bytes | None = None
    client_id: bytes | None = None
    classless_routes: tuple[Route, ...] = ()
    options: tuple[tuple[int, bytes], ...] = ()

    def reply(self, message_type: int, **changes: Any) -> DHCP:
        """A server's answer to this client message: same xid, chaddr, flags and relay."""
        base = DHCP(
            op=BOOTREPLY,
            xid=self.xid,
            chaddr=self.chaddr,
            htype=self.htype,
            flags=self.flags,
            giaddr=self.giaddr,
            message_type=message_type,
        )
        values = {f.name: getattr(base, f.name) for f in fields(DHCP)}
        values.update(changes)
        return DHCP(**values)

    @classmethod
    def parse(cls, data: Buffer) -> Self:
        """Parse a DHCP message (the payload of a UDP datagram)."""
        need(data, BOOTP_HEADER_LEN + 4, "DHCP")
        op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file = (
            _HEADER.unpack_from(data, 0)
        )
        check(hlen <= 16, f"DHCP: hlen {hlen} > 16")
        check(data[BOOTP_HEADER_LEN : BOOTP_HEADER_LEN + 4] == MAGIC_COOKIE, "DHCP: no cookie")
        values: dict[str, Any] = {
            "op": op,
            "htype": htype,
            "hops": hops,
            "xid": xid,
            "secs": secs,
            "flags": flags,
            "ciaddr": IPv4Address(ci),
            "yiaddr": IPv4Address(yi),
            "siaddr": IPv4Address(si),
            "giaddr": IPv4Address(gi),
            "chaddr": chaddr[:hlen],
            "sname": sname.split(b"\0", 1)[0],
            "file": file.split(b"\0", 1)[0],
        }
        raw: list[tuple[int, bytes]] = []
        for code, value in _read_options(data, BOOTP_HEADER_LEN + 4).items():
            typed = _BY_CODE.get(code)
            if typed is None:
                raw.append((code, value))
            else:
                name, kind = typed
                values[name] = _decode(kind, value, code)
        return cls(options=tuple(raw), **values)

    def build(self) -> bytes:
        """The message on the wire, padded to 300 bytes."""
        check(len(self.chaddr) <= 16, "DHCP: chaddr is at most 16 bytes")
        check_ipv4(self.ciaddr, self.yiaddr, self.siaddr, self.giaddr, what="DHCP header")
        check(len(self.sname) <= 64 and b"\0" not in self.sname, "DHCP: sname")
        check(len(self.file) <= 128 and b"\0" not in self.file, "DHCP: file")
        with guarded("DHCP header"):
            header = _HEADER.pack(
                self.op,
                self.htype,
                len(self.chaddr),
                self.hops,
                self.xid,
                self.secs,
                self.flags,
                self.ciaddr.packed,
                self.yiaddr.packed,
                self.siaddr.packed,
                self.giaddr.packed,
                self.chaddr,
                self.sname,
                self.file,
            )
        parts = [header, MAGIC_COOKIE]
        for code, name, kind in _TYPED:
            value = getattr(self, name)
            if value is not None and value != ():
                parts.append(_encode_option(code, _encode(kind, value, code)))
        seen = {code for code, _, _ in _TYPED}
        for code, value in self.options:
            check(0 < code < OPT_END and code not in seen, f"DHCP: option {code} here")
            seen.add(code)
            parts.append(_encode_option(code, value))
        parts.append(bytes([OPT_END]))
        message = b"".join(parts)
        return message + bytes(max(0, BOOTP_MIN_LEN - len(message)))


def _read_options(data: Buffer, offset: int) -> dict[int, bytes]:
    """code -> value, repeated codes concatenated, in order of first appearance."""
    found: dict[int, bytes] = {}
    end = len(data)
    while offset < end:
        code = data[offset]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            offset += 1
            continue
        need(data, offset + 2, f"DHCP option {code}")
        length = data[offset + 1]
        need(data, offset + 2 + length, f"DHCP option {code}")
        found[code] = found.get(code, b"") + bytes(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return found


def _encode_option(code: int, value: bytes) -> bytes:
    if not value:
        return bytes([code, 0])
    return b"".join(
        bytes([code, len(chunk)]) + chunk
        for chunk in (value[i : i + 255] for i in range(0, len(value), 255))
    )


def _decode_ips(value: bytes, code: int) -> tuple[IPv4Address, ...]:
    check(len(value) > 0 and len(value) % 4 == 0, f"DHCP option {code}: bad address list")
    return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))


def _decode_int(size: int) -> Callable[[bytes, int], int]:
    def decode(value: bytes, code: int) -> int:
        check(len(value) == size, f"DHCP option {code}: {len(value)} bytes, expected {size}")
        return int.from_bytes(value, "big")

    return decode


def _decode_ip(value: bytes, code: int) -> IPv4Address:
    check(len(value) == 4, f"DHCP option {code}: an address is 4 bytes")
    return IPv4Address(value)


def _decode_routes(value: bytes, code: int) -> tuple[Route, ...]:
    """RFC 3442: (prefix length, significant octets of the network, router) repeated."""
    check(len(value) > 0, f"DHCP option {code}: empty")
    routes: list[Route] = []
    i = 0
    while i < len(value):
        width = value[i]
        check(width <= 32, f"DHCP option {code}: prefix length {width}")
        octets = (width + 7) // 8
        check(i + 1 + octets + 4 <= len(value), f"DHCP option {code}: truncated route")
        net = int.from_bytes(value[i + 1 : i + 1 + octets].ljust(4, b"\0"), "big")
        net &= (0xFFFFFFFF << (32 - width)) & 0xFFFFFFFF
        router = IPv4Address(value[i + 1 + octets : i + 5 + octets])
        routes.append((IPv4Network((net, width)), router))
        i += 5 + octets
    return tuple(routes)


def _encode_routes(routes: tuple[Route, ...]) -> bytes:
    parts = []
    for net, router in routes:
        width = net.prefixlen
        parts.append(bytes([width]) + net.network_address.packed[: (width + 7) // 8])
        parts.append(router.packed)
    return b"".join(parts)


def _decode_text(value: bytes, code: int) -> str:
    return value.decode("utf-8", "surrogateescape")


def _decode_bytes(value: bytes, code: int) -> bytes:
    return value


_DECODERS: dict[str, Callable[[bytes, int], Any]] = {
    "u8": _decode_int(1),
    "u16": _decode_int(2),
    "u32": _decode_int(4),
    "ip": _decode_ip,
    "ips": _decode_ips,
    "text": _decode_text,
    "bytes": _decode_bytes,
    "routes": _decode_routes,
}

_SIZES = {"u8": 1, "u16": 2, "u32": 4}


def _decode(kind: str, value: bytes, code: int) -> Any:
    return _DECODERS[kind](value, code)


def _encode(kind: str, value: Any, code: int) -> bytes:
    with guarded(f"DHCP option {code}"):
        if kind in _SIZES:
            return int(value).to_bytes(_SIZES[kind], "big")
        if kind == "ip":
            check_ipv4(value, what=f"DHCP option {code}")
            return bytes(value.packed)
        if kind == "ips":
            check_ipv4(*value, what=f"DHCP option {code}")
            return b"".join(ip.packed for ip in value)
        if kind == "text":
            return str(value).encode("utf-8", "surrogateescape")
        if kind == "routes":
            for net, router in value:
                check_ipv4(net.network_address, router, what=f"DHCP option {code}")
            return _encode_routes(value)
        return bytes(value)


_TYPED: tuple[tuple[int, str, str], ...] = (
    (OPT_MESSAGE_TYPE, "message_type", "u8"),
    (OPT_SERVER_ID, "server_id", "ip"),
    (OPT_LEASE_TIME, "lease_time", "u32"),
    (OPT_RENEWAL_TIME, "renewal_time", "u32"),
    (OPT_REBINDING_TIME, "rebinding_time", "u32"),
    (OPT_SUBNET_MASK, "subnet_mask", "ip"),
    (OPT_ROUTER, "routers", "ips"),
    (OPT_DNS, "dns_servers", "ips"),
    (OPT_HOSTNAME, "hostname", "text"),
    (OPT_DOMAIN_NAME, "domain_name", "text"),
    (OPT_MTU, "mtu", "u16"),
    (OPT_BROADCAST, "broadcast_address", "ip"),
    (OPT_REQUESTED_IP, "requested_ip", "ip"),
    (OPT_PARAMETER_LIST, "parameter_request_list", "bytes"),
    (OPT_CLIENT_ID, "client_id", "bytes"),
    (OPT_CLASSLESS_ROUTES, "classless_routes", "routes"),
)
"""(code, field, kind) of the typed options, in the order ``build`` writes them."""

_BY_CODE = {code: (name, kind) for code, name, kind in _TYPED}
