"""Embedding registry members; importing this package registers them."""

from uer.embeddings import word, position, segment  # noqa: F401
from uer.embeddings import glm_position  # noqa: F401
from uer.embeddings.embedding import Embedding  # noqa: F401
