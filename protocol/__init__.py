"""The contract both sides compute identically: messages, codec, subjects, money, ids, barcodes, pricing.

Pure: no I/O, no clock reads (time is passed in), standard library and msgpack only.
"""
from protocol import messages as _messages  # noqa: F401 - with the package: it registers the modules that build on it, so any imports first
from protocol.errors import ProtocolError

__all__ = ["ProtocolError"]
