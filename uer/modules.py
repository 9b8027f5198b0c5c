"""Importing this module fills the embedding, encoder and target registries."""

import uer.embeddings  # noqa: F401
import uer.encoders  # noqa: F401
import uer.targets  # noqa: F401
