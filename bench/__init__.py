"""Benchmarks: `make bench` (python -m bench) writes bench/results/latest.json and BENCHMARKS.md."""
