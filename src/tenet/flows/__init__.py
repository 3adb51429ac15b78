"""Flows: the flow table with tags, expiry, eviction and the megaflow cache."""

from tenet.flows.table import Flow, FlowTable, Megaflow, cacheable

__all__ = ["Flow", "FlowTable", "Megaflow", "cacheable"]
