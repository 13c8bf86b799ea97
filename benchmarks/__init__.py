"""Benchmarks: graceinit next to tini and dumb-init. Run ``python -m benchmarks --help``."""
