"""Decoder registry members; importing this package registers them."""

from uer.decoders import transformer  # noqa: F401
