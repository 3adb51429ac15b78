"""The agent's Prometheus endpoint: ``http://HOST:PORT/metrics`` (``tenet agent
--metrics-address HOST:PORT``; off unless given).

The agent's counters (what the status service publishes) are read on the agent's
loop, in :meth:`MetricsService.tick`, about once a second, and rendered there; the
HTTP thread only hands out the last rendering (so a scrape never touches the agent's
tables, and is at most a tick old). Names: ``tenet_agent_<counter>_total`` for the
monotonic counters, ``tenet_agent_<counter>`` for the gauges (:data:`GAUGES`); the
drops, whatever counts them, also as ``tenet_agent_drops_total{reason=...}``
(:data:`DROPS`); with a :class:`~tenet.store.metered.MeteredStore`, the store's call
latency and the watch lag (object changes the watch delivered that the agent has not
applied yet: how many, and how long the oldest has waited).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tenet.errors import ValidationError
from tenet.metrics import CONTENT_TYPE, Family, counter_family, metric_name, render, single
from tenet.services.base import ServiceContext
from tenet.store.metered import MeteredStore

PREFIX = "tenet_agent"
DEFAULT_PORT = 9741

# what is a level, not a count of events
GAUGES = frozenset(
    {
        "flows",
        "flows_in_table",
        "nexthops_resolving",
        "ct_entries",
        "ct_groups",
        "applied_revision",
        "flows_adopted",
        "flows_adoption_removed",
        "ct_restored",
        "bindings_bound",
        "bindings_waiting",
        "bindings_failed",
    }
)

# counter -> the reason its packets (or messages) were dropped; the simulation's DROP
# outcomes are split by where they were decided (counters ``drops_at_<site>``, the
# reason ``simulated_<site>``: ``simulated_rule``, ``simulated_router``, ...)
SITE = "drops_at_"
DROPS = {
    "malformed": "malformed",
    "upcalls_dropped": "upcall_queue_full",
    "unknown_port": "unknown_port",
    "tunnel_misses": "tunnel_key_unknown",
    "unsendable": "unsendable",
    "oversize": "oversize",
    "kernel_table_full": "kernel_table_full",
    "nexthops_overflow": "nexthop_queue_full",
    "nexthops_failures": "nexthop_unresolved",
    "state_rejected": "state_rejected",
    "state_malformed": "state_malformed",
}

HELP = {
    "upcalls": "Packets the datapath handed to the agent (flow misses).",
    "simulations": "Upcalls simulated (not answered from the megaflow cache).",
    "flows_in_table": "Flows the agent has installed in its datapath now.",
    "flows_installed": "Flows installed in the datapath.",
    "ct_entries": "Tracked connection keys.",
    "ct_evicted": "Tracked connections evicted by the table's size limit.",
    "state_sent": "Flow-state messages sent to peers.",
    "state_received": "Flow-state messages received from peers.",
    "state_rejected": "Flow-state messages from outside the tunnel zone, refused.",
    "upcalls_dropped": "Upcalls dropped because the agent's queue was full.",
    "applied_revision": "The store revision whose changes the agent has applied.",
}


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a listen address."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError("metrics_address", f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def agent_families(
    counters: Mapping[str, int], host_id: str, store: MeteredStore | None
) -> list[Family]:
    """The agent's metrics from its counters (and its metered store, if it has one)."""
    families = [single(f"{PREFIX}_info", "gauge", "This agent: its host.", 1, host_id=host_id)]
    for key, value in sorted(counters.items()):
        if key.startswith(SITE):
            continue  # in the drops by reason only
        name = metric_name(key)
        words = HELP.get(key, f"The agent's {key.replace('_', ' ')}.")
        if key in GAUGES:
            families.append(single(f"{PREFIX}_{name}", "gauge", words, value))
        else:
            families.append(single(f"{PREFIX}_{name}_total", "counter", words, value))
    drops = {reason: counters[key] for key, reason in DROPS.items() if key in counters}
    for key, value in counters.items():
        if key.startswith(SITE):
            drops["simulated_" + metric_name(key.removeprefix(SITE))] = value
    families.append(
        counter_family(
            f"{PREFIX}_drops_total",
            "Packets and messages dropped, by reason (each also has its own counter).",
            "reason",
            drops,
        )
    )
    if store is not None:
        families.extend(store.families(PREFIX))
        pending, age = store.lag(counters.get("applied_revision", 0))
        families.append(
            single(
                f"{PREFIX}_watch_pending_changes",
                "gauge",
                "Object changes the store's watch delivered that the agent has not applied.",
                pending,
            )
        )
        families.append(
            single(
                f"{PREFIX}_watch_lag_seconds",
                "gauge",
                "How long the oldest delivered, not yet applied object change has waited.",
                age,
            )
        )
    return families


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsService:
    """Serves the agent's metrics over HTTP on a thread of its own (see the module)."""

    name = "metrics"

    def __init__(self, address: tuple[str, int], store: MeteredStore | None = None) -> None:
        self.address = address
        self.store = store
        self._ctx: ServiceContext | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._page = b""
        self._lock = threading.Lock()

    @property
    def bound(self) -> tuple[str, int]:
        """Where it listens (the port the system chose when asked for 0)."""
        if self._server is None:
            raise RuntimeError("the metrics service is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self.refresh()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is here")
                    return
                body = service.page()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # a scrape every 15 s is not news

        server_class = _V6Server if ":" in self.address[0] else ThreadingHTTPServer
        self._server = server_class(self.address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    def page(self) -> bytes:
        with self._lock:
            return self._page

    def refresh(self) -> None:
        """Render the counters now (on the agent's loop)."""
        if self._ctx is None:
            return
        families = agent_families(self._ctx.counters(), str(self._ctx.host_id), self.store)
        page = render(families)
        with self._lock:
            self._page = page

    def tick(self, now: float) -> None:
        self.refresh()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self._ctx = None
