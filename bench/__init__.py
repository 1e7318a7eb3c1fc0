"""Benchmarks of the quota engine at national scale, each runnable as ``python -m bench.<name>``."""
