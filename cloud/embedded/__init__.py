"""Embedded servers for zero set-up runs and tests: a real nats-server and a real PostgreSQL."""
from urllib.parse import urlsplit, urlunsplit

from cloud.embedded.stack import EmbeddedStack

__all__ = ["EmbeddedStack", "redacted"]


def redacted(url: str) -> str:
    """A server URL fit for a terminal or a log: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
