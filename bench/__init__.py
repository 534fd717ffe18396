"""Benchmarks: each starts what it needs and reports ratios against a baseline run in the same process."""
