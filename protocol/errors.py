"""The one error every malformed input of the contract turns into."""


class ProtocolError(ValueError):
    """A frame, barcode or value that breaks the contract. The message says exactly what was wrong."""
