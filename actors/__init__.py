"""The domain as pure actor classes: plain state machines, no I/O, no clock reads, no Ray (time and ids passed in)."""
