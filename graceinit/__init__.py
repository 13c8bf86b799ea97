"""graceinit: a container init that makes graceful termination real."""

__version__ = "0.1.0"
