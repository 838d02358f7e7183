"""colddiff's benchmark suite: ``python -m benchmarks [--quick] [--json FILE]``.

Each case measures colddiff and the peer a user would pick instead in the same process, with
several repetitions, and reports medians and their ratio. See ``docs/benchmarks.md``.
"""
