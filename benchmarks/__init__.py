"""Benchmarks: each prints a table, writes JSON, and compares against a peer in the same run."""
