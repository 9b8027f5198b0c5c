"""UER-py's ``pretrain.py --deep_init``: the projections that write into the residual stream start
smaller, by 1 / sqrt(2 * layers_num) (GPT-2 / Megatron), so that the sum over 2 * layers_num residual
branches keeps the scale of one.

UER-py (uer/trainer.py init_model): every weight N(0, 0.02), except parameters whose names contain
``final_linear.weight`` (attention output) or ``linear_2.weight`` (second FFN linear):
N(0, 0.02 / sqrt(2 * layers_num)), with those biases zero.  Here the same modules are each
transformer layer's ``attention.output`` / ``self_attention.output`` / ``cross_attention.output``
and ``feed_forward.linear_2`` (encoder and decoder; ``layers_num`` is the config's, as in UER-py).
UER-py's substring match also catches its untied pretraining heads ``target.mlm.linear_2`` and
``target.sp.linear_2``, which are not residual branches; those keep N(0, 0.02) here.
"""

import math

import torch
from torch import nn

from uer.partitioned import gathered

RESIDUAL_OUTPUTS = ("attention.output", "self_attention.output", "cross_attention.output", "feed_forward.linear_2")
BASE_STD = 0.02


def residual_projections(model: nn.Module):
    """(name, nn.Linear) of every projection that writes into a transformer layer's residual stream."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".layers." in f".{name}" and name.endswith(RESIDUAL_OUTPUTS):
            yield name, module


@torch.no_grad()
def apply_deep_init(model: nn.Module, layers_num: int, std: float = BASE_STD) -> int:
    """Redraw the residual projections with std / sqrt(2 * layers_num), zero their biases; returns
    how many were redrawn.  Partitioned (ZeRO-3) parameters are gathered and rank 0's draw kept."""
    scaled = std / math.sqrt(2.0 * layers_num)
    count = 0
    for _, linear in residual_projections(model):
        with gathered(linear.parameters(recurse=False), modify=True):
            nn.init.normal_(linear.weight, std=scaled)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        count += 1
    return count
