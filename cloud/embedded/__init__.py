"""Embedded servers for zero set-up runs and tests: a real nats-server and a real PostgreSQL."""
from cloud.embedded.stack import EmbeddedStack

__all__ = ["EmbeddedStack"]
