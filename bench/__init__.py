"""Benchmarks; ``python -m bench --help``. Numbers go to BENCHMARKS.md."""
