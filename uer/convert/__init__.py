"""Hugging Face <-> uer model conversion: one parameter table per family, used in both directions.

Importing the package registers the families in ``CONVERTERS``.
"""

from uer.convert.registry import CONVERTERS  # noqa: F401
from uer.convert import bert, roberta, albert, gpt2, electra, deberta  # noqa: F401  (registers the families)
from uer.convert import t5, bart, pegasus, marian  # noqa: F401  (the encoder-decoder families)
from uer.convert import llama, bloom  # noqa: F401  (the decoder-only LLM families)
from uer.convert import modernbert  # noqa: F401  (ModernBERT: RoPE, GeGLU, sliding-window layers)
from uer.convert.api import Converted, build_uer_model, hf_to_uer, uer_kind, uer_to_hf  # noqa: F401
