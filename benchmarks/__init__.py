"""Runnable benchmarks: each prints figures and ratios against a baseline from the same run."""
