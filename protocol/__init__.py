"""The contract both sides compute identically: messages, codec, subjects, money, ids, barcodes, pricing.

Pure: no I/O, no clock reads (time is passed in), standard library and msgpack only.
"""
# messages first: it registers every kind (protocol.return_messages' too), whichever module is imported first
from protocol import messages as _messages  # noqa: F401
from protocol.errors import ProtocolError

__all__ = ["ProtocolError"]
