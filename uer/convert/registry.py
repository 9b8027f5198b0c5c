"""The converter registry: one entry per Hugging Face model family ("bert", "gpt2" ...).

Adding a family is one file under ``uer/convert/`` with one ``@CONVERTERS.register(...)`` class
holding its parameter table; nothing else is edited.
"""

from uer.registry import Registry

CONVERTERS = Registry("converter")
