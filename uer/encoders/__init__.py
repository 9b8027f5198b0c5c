"""Encoder registry members; importing this package registers them."""

from uer.encoders import transformer  # noqa: F401
