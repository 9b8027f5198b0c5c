"""Refusing a model that cannot be allocated before trying: ``hidden_size 1e9`` or ``layers_num 1e7``
would otherwise end in an out-of-memory kill or a C++ allocation error many minutes later.  The
parameter count is estimated from the config alone (embeddings + one encoder layer's matrices times
the layers), which is within a few percent for every encoder here."""

import os

import torch

from uer.config import ModelConfig
from uer.errors import ConfigError


def estimated_parameters(config: ModelConfig) -> int:
    c = config
    head_width = c.attention_head_size * c.heads_num if c.attention_head_size else c.hidden_size
    embeddings = (c.vocab_size + c.max_seq_length + 3) * c.emb_size
    if c.emb_size != c.hidden_size:
        embeddings += c.emb_size * c.hidden_size
    ff_matrices = 3 if c.feed_forward == "gated" else 2
    kv_width = head_width * c.kv_heads // c.heads_num          # grouped-query attention: fewer k/v heads
    layer = 2 * c.hidden_size * (head_width + kv_width) + ff_matrices * c.hidden_size * c.feedforward_size
    layers = 1 if c.parameter_sharing else c.layers_num
    decoder = 0
    if c.decoder:   # self- and cross-attention, feed-forward, its own embedding unless shared
        heads = c.decoder_heads_num or c.heads_num
        width = c.attention_head_size * heads if c.attention_head_size else c.hidden_size
        per_layer = 8 * c.hidden_size * width + ff_matrices * c.hidden_size * (c.decoder_feedforward_size
                                                                               or c.feedforward_size)
        decoder = (c.decoder_layers_num or c.layers_num) * per_layer
        decoder += 0 if c.share_embedding else (c.tgt_vocab_size or c.vocab_size) * c.emb_size
    return int(embeddings + layers * layer + decoder)


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_fits_in_memory(config: ModelConfig) -> None:
    """Refuse when the fp32 weights alone exceed this machine's memory (unknown memory: no check).
    Under ``deepspeed.zero.Init`` the weights are partitioned and may be offloaded, and a model built
    on the meta device (shapes only, e.g. to count a 70B model's parameters) takes no memory: no check."""
    if partitioned_construction_active() or building_on_meta():
        return
    memory = physical_memory_bytes()
    count = estimated_parameters(config)
    if memory and count * 4 > memory:
        raise ConfigError(f"the model config describes about {count / 1e9:.3g} billion parameters "
                          f"({count * 4 / 2**30:.3g} GiB in fp32), more than this machine's "
                          f"{memory / 2**30:.3g} GiB of memory; check hidden_size ({config.hidden_size}), "
                          f"feedforward_size ({config.feedforward_size}), layers_num ({config.layers_num}) and "
                          "vocab_size, or build it partitioned under DeepSpeed ZeRO-3")


def building_on_meta() -> bool:
    get_default_device = getattr(torch, "get_default_device", None)    # torch >= 2.3
    return get_default_device is not None and get_default_device().type == "meta"


def partitioned_construction_active() -> bool:
    import sys
    if "deepspeed" not in sys.modules:
        return False
    from deepspeed.runtime.zero import partition_parameters
    return partition_parameters.top_level_context is not None
