"""hookwise's benchmark suite: `python -m bench.run` (see docs/performance.md).

A benchmark, not a test: it measures and reports, and judges nothing but the targets
it prints next to each number. Every server it talks to is a separate process on
loopback, started and stopped by the suite itself.
"""
