"""Benchmarks and the chaos harness; `make bench` runs ``python -m bench``."""
