"""Encoder registry members; importing this package registers them."""

from uer.encoders import deberta  # noqa: F401
from uer.encoders import transformer  # noqa: F401
