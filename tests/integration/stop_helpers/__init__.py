"""Helpers for the stop-sequence (issue 3) integration tests: tests/integration/test_stop_*.py."""
