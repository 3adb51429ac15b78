"""The Internet checksum against published values and a naive oracle; RFC 1624 updates."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from packets_strategies import FAST, naive_checksum

from tenet.packets import checksum as cs


def test_rfc1071_numerical_example() -> None:
    # RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (ones' complement).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert cs.ones_sum(data) == 0xDDF2
    assert cs.internet_checksum(data) == 0x220D


def test_ipv4_header_example_from_wikipedia() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert cs.internet_checksum(header) == 0xB861
    with_checksum = header[:10] + b"\xb8\x61" + header[12:]
    assert cs.internet_checksum(with_checksum) == 0


def test_zero_and_odd_lengths() -> None:
    assert cs.ones_sum(b"") == 0
    assert cs.internet_checksum(b"\0\0") == 0xFFFF
    assert cs.ones_sum(b"\x01") == 0x0100
    assert cs.ones_sum(b"\xff\xff\xff\xff") == 0xFFFF


def test_pseudo_headers() -> None:
    v4 = cs.pseudo_header(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17, 28)
    assert v4 == bytes.fromhex("0a000001 0a000002 00 11 001c")
    v6 = cs.pseudo_header(bytes(15) + b"\x01", bytes(15) + b"\x02", 58, 32)
    assert v6 == bytes(15) + b"\x01" + bytes(15) + b"\x02" + bytes.fromhex("00000020 000000 3a")


def test_udp_fixup() -> None:
    assert cs.udp_fixup(0) == 0xFFFF
    assert cs.udp_fixup(0x1234) == 0x1234


def test_update_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same even length"):
        cs.update(0, b"\0\0", b"\0")


@FAST
@given(st.binary(max_size=200))
def test_checksum_equals_naive_oracle(data: bytes) -> None:
    assert cs.internet_checksum(data) == naive_checksum(data)


@FAST
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_sums_compose(a: bytes, b: bytes) -> None:
    if len(a) % 2:
        a += b"\0"
    assert cs.internet_checksum(b, cs.ones_sum(a)) == naive_checksum(a + b)


@FAST
@given(st.data())
def test_incremental_update_equals_recomputation(data: st.DataObject) -> None:
    words = data.draw(st.integers(1, 40))
    covered = bytearray(data.draw(st.binary(min_size=2 * words, max_size=2 * words)))
    width = data.draw(st.sampled_from([2, 4, 16]).filter(lambda w: w <= len(covered)))
    at = 2 * data.draw(st.integers(0, (len(covered) - width) // 2))
    new = data.draw(st.binary(min_size=width, max_size=width))
    before = cs.internet_checksum(covered)
    old = bytes(covered[at : at + width])
    covered[at : at + width] = new
    assume(any(covered))  # all zero: +0 vs -0, impossible in an IP header (module docstring)
    after = cs.internet_checksum(covered)
    assert cs.update(before, old, new) == after
    if width == 2:
        assert cs.update16(before, int.from_bytes(old, "big"), int.from_bytes(new, "big")) == after


@FAST
@given(st.binary(min_size=20, max_size=60).filter(lambda b: len(b) % 2 == 0), st.integers(0, 255))
def test_ttl_update_equals_recomputation(header: bytes, ttl: int) -> None:
    # the TTL is the high byte of the word at offset 8 of an IPv4 header
    before = cs.internet_checksum(header)
    changed = header[:8] + bytes([ttl]) + header[9:]
    assume(any(changed))
    old_word = int.from_bytes(header[8:10], "big")
    new_word = int.from_bytes(changed[8:10], "big")
    assert cs.update16(before, old_word, new_word) == cs.internet_checksum(changed)
