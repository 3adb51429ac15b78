"""Value types of the topology model, and their parsers.

Every parser takes the raw value and the field path, and either returns the
normalized value or raises :class:`~tenet.errors.ValidationError` naming the
field and the reason. Invariants of the normalized values:

* a ``MAC`` is six lower-case hex pairs joined by ``:``;
* an ``IPAddress`` is an ``IPv4Address`` or an ``IPv6Address``;
* an ``IPNetwork`` is an ``IPv4Network`` or ``IPv6Network`` with no host bits set;
* a tunnel key is 1..2**24-1 (0 means "not allocated yet");
* an interface name is a valid Linux interface name (1..15 bytes, no ``/``, no space).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import uuid
from typing import NewType

from tenet.errors import ValidationError

MAC = NewType("MAC", str)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BROADCAST_MAC = MAC("ff:ff:ff:ff:ff:ff")
TUNNEL_KEY_BITS = 24
TUNNEL_KEY_STATE = (1 << TUNNEL_KEY_BITS) - 1  # reserved: flow-state messages between agents
TUNNEL_KEY_MAX = TUNNEL_KEY_STATE - 1
NAME_MAX = 255
IFNAME_MAX = 15

_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_MAC_INPUT_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")


def parse_mac(value: object, field: str) -> MAC:
    """``aa:bb:cc:dd:ee:ff`` (or with ``-``, any case) -> normalized MAC."""
    if not isinstance(value, str) or not _MAC_INPUT_RE.fullmatch(value):
        raise ValidationError(field, f"{value!r} is not a MAC address like 02:00:00:00:00:01")
    return MAC(value.lower().replace("-", ":"))


def check_mac(value: str, field: str) -> None:
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value):
        raise ValidationError(field, f"{value!r} is not a normalized MAC address")


def mac_is_multicast(mac: str) -> bool:
    return bool(int(mac[0:2], 16) & 1)


def parse_ip(value: object, field: str) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValidationError(field, f"{value!r} is not an IP address")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(field, f"{value!r} is not an IPv4 or IPv6 address") from None


def parse_network(value: object, field: str) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValidationError(field, f"{value!r} is not a CIDR")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            reason = f"{value!r} has host bits set (did you mean {_network_of(value)}?)"
        else:
            reason = f"{value!r} is not a CIDR like 10.0.0.0/24 or 2001:db8::/64"
        raise ValidationError(field, reason) from None


def _network_of(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))


def parse_uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise ValidationError(field, f"{value!r} is not a UUID")


def check_name(value: str, field: str = "name") -> None:
    if len(value) > NAME_MAX:
        raise ValidationError(field, f"is {len(value)} characters long; at most {NAME_MAX}")
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValidationError(field, "contains control characters")


def check_ifname(value: str, field: str) -> None:
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        raise ValidationError(field, f"{value!r} is not valid UTF-8 text") from None
    if not 1 <= len(raw) <= IFNAME_MAX:
        raise ValidationError(field, f"{value!r} must be 1 to {IFNAME_MAX} bytes long")
    # as the kernel's dev_valid_name: no '/', ':' or white space (a NUL would cut the name)
    bad = any(c in "/:" or c.isspace() or ord(c) < 32 or ord(c) == 0x7F for c in value)
    if bad or value in (".", ".."):
        raise ValidationError(field, f"{value!r} is not a valid interface name")


def check_range(value: int, lo: int, hi: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(field, f"{value!r} is outside {lo}..{hi}")


def check_tunnel_key(value: int, field: str = "tunnel_key") -> None:
    """0 means "allocate one"; otherwise the key must fit in 24 bits, and not be the
    one reserved for flow state between agents."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TUNNEL_KEY_MAX:
        raise ValidationError(
            field,
            f"{value!r} is outside the 24-bit range 1..{TUNNEL_KEY_MAX} "
            f"({TUNNEL_KEY_STATE} is reserved for flow state between agents)",
        )


def check_same_family(a: IPAddress | IPNetwork, b: IPAddress | IPNetwork, field: str) -> None:
    if a.version != b.version:
        raise ValidationError(field, f"{b} is IPv{b.version} but {a} is IPv{a.version}")


def is_usable_host(address: IPAddress, network: IPNetwork) -> bool:
    """``address`` is in ``network`` and is neither its network nor broadcast address."""
    if address not in network:
        return False
    if network.version == 4 and network.prefixlen < 31:
        return address not in (network.network_address, network.broadcast_address)
    return True
