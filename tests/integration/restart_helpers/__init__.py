"""Helpers for the zero-downtime restart integration tests (issue 5)."""
