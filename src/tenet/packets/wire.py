"""Shared plumbing of the codecs: the buffer type and the length guards.

Owns nothing on the wire itself. Invariants every codec keeps with its help:

* a parser takes ``bytes``, ``bytearray`` or ``memoryview`` and never keeps a
  reference to it: every field it returns is an ``int``, ``bytes``, ``str`` or
  an ``ipaddress`` value, and the payload it hands back is a ``bytes`` copy;
* a parser raises :class:`~tenet.errors.PacketError` and nothing else, whatever
  the input bytes; :func:`need` and :func:`guarded` are how they do it;
* a builder raises :class:`~tenet.errors.PacketError` when a field does not fit
  its wire format (a port above 65535, a MAC that is not six bytes, ...).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address

from tenet.errors import PacketError

Buffer = bytes | bytearray | memoryview
"""What a parser accepts: any contiguous buffer of bytes."""


def need(data: Buffer, length: int, what: str) -> None:
    """Raise PacketError unless ``data`` holds at least ``length`` bytes."""
    if len(data) < length:
        raise PacketError(f"{what}: truncated ({len(data)} bytes, needs {length})")


def check(condition: bool, what: str) -> None:
    """Raise PacketError(``what``) unless ``condition`` holds."""
    if not condition:
        raise PacketError(what)


def check_ipv4(*addresses: object, what: str) -> None:
    """Raise PacketError unless every address is an ``IPv4Address``."""
    if not all(isinstance(a, IPv4Address) for a in addresses):
        raise PacketError(f"{what}: expected IPv4 addresses, got {addresses!r}")


def check_mac(mac: bytes, what: str) -> None:
    if not isinstance(mac, bytes) or len(mac) != 6:
        raise PacketError(f"{what}: a MAC address is 6 bytes, got {mac!r}")


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Turn the low-level errors of struct and slicing into PacketError."""
    try:
        yield
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise PacketError(f"{what}: {exc}") from exc
