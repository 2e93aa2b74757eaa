"""Benchmarks and load tests (targets on this machine only)."""
