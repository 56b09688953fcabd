"""Benchmarks: each prints a table and ratios, and writes JSON with --json."""
