"""Devices on serial ports: sans-I/O codecs (bytes in, events out) and the drivers that feed them."""
