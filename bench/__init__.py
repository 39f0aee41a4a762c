"""Benchmarks of the relay: `python -m bench` (bench/run.py) and the single-purpose scripts beside it.

Nothing here is imported by the relay; figures only, never a pass/fail timing inside the test suite.
"""
