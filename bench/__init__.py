"""Benchmarks: `python -m bench SCENARIO --size N` (see docs/benchmarks.md)."""
