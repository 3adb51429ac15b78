"""Prometheus metrics, written by hand: families of samples, latency histograms, and the
text exposition format (version 0.0.4) that ``/metrics`` answers with.

A base module (no layer: the store, the services and the API use it). It does no I/O;
whoever serves ``/metrics`` renders the families it has gathered. The format, one
family::

    # HELP tenet_agent_upcalls_total Packets the datapath handed to the agent.
    # TYPE tenet_agent_upcalls_total counter
    tenet_agent_upcalls_total 42
    # TYPE tenet_store_request_seconds histogram
    tenet_store_request_seconds_bucket{op="get",le="0.001"} 3
    ...
    tenet_store_request_seconds_bucket{op="get",le="+Inf"} 4
    tenet_store_request_seconds_sum{op="get"} 0.0031
    tenet_store_request_seconds_count{op="get"} 4

Label values escape ``\\``, ``"`` and newlines. :class:`Histogram` is thread-safe
(observed on the threads that make the calls, rendered on the one that serves).
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: from a memory store's microseconds to an etcd cluster's slow fsync
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
KINDS = ("counter", "gauge", "histogram")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One line: the family's name plus ``suffix`` (``_bucket``...), labels, a value."""

    labels: Labels
    value: float
    suffix: str = ""


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    help: str
    samples: tuple[Sample, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not a Prometheus name")
        if self.kind not in KINDS:
            raise ValueError(f"metric kind {self.kind!r} is not one of {KINDS}")


def metric_name(text: str) -> str:
    """``text`` as a metric name part: what is not a letter, digit or ``_`` becomes ``_``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def single(name: str, kind: str, help: str, value: float, **labels: str) -> Family:
    return Family(name, kind, help, (Sample(tuple(sorted(labels.items())), value),))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def render(families: Iterable[Family]) -> bytes:
    """The exposition of ``families`` (a name must not appear twice)."""
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric {family.name} appears twice")
        seen.add(family.name)
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {help_text}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for s in family.samples:
            lines.append(f"{family.name}{s.suffix}{_labels(s.labels)} {_number(s.value)}")
    return ("\n".join(lines) + "\n").encode()


_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse(text: str) -> dict[tuple[str, Labels], float]:
    """Samples of an exposition by (name, sorted labels): what a scraper reads (for
    tests and for ``tenet`` tools; comments are skipped)."""
    out: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        name, raw, value = match.groups()
        labels: list[tuple[str, str]] = []
        body = (raw or "{}")[1:-1]
        for label in _LABEL.finditer(body):
            text_value = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label[2])
            labels.append((label[1], text_value))
        out[(name, tuple(sorted(labels)))] = float(value)
    return out


class Histogram:
    """Observations by label values, in cumulative buckets (Prometheus's histogram)."""

    def __init__(self, label_names: Sequence[str], buckets: Sequence[float] = LATENCY_BUCKETS):
        if list(buckets) != sorted(buckets):
            raise ValueError("histogram buckets must be sorted")
        self.label_names = tuple(label_names)
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        # per label values: a count per bucket (not cumulative; the last: above all), sum
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *label_values: str) -> None:
        index = bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                series = self._series[label_values] = ([0] * (len(self.buckets) + 1), [0.0])
            series[0][index] += 1
            series[1][0] += value

    def count(self, *label_values: str) -> int:
        with self._lock:
            series = self._series.get(label_values)
            return sum(series[0]) if series else 0

    def family(self, name: str, help: str) -> Family:
        samples: list[Sample] = []
        with self._lock:
            series = sorted((k, (list(c), s[0])) for k, (c, s) in self._series.items())
        for values, (counts, total) in series:
            base = tuple(zip(self.label_names, values, strict=True))
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = "+Inf" if math.isinf(bound) else _number(bound)
                samples.append(Sample((*base, ("le", le)), running, "_bucket"))
            samples.append(Sample(base, total, "_sum"))
            samples.append(Sample(base, running, "_count"))
        return Family(name, "histogram", help, tuple(samples))


def counter_family(name: str, help: str, label: str, values: Mapping[str, float]) -> Family:
    """A counter with one label, a sample per value of it."""
    samples = tuple(Sample(((label, k),), v) for k, v in sorted(values.items()))
    return Family(name, "counter", help, samples)
