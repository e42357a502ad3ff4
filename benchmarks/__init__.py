"""Benchmarks and the load test: scripts that print figures (not part of the installed package)."""
