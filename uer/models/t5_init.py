"""T5's initialisation (config ``"init": "t5"``), drawn after the BERT N(0, 0.02) pass of ``init_weights``.

T5 leaves out the 1/sqrt(head_size) on q.k (``remove_attention_scale``) and has no embedding layer norm;
Mesh TensorFlow's initialisers carry the scale instead (transformers' T5PreTrainedModel._init_weights,
factor 1.0): every matrix of a transformer layer is N(0, 1/fan_in) — q, k, v and the first FFN linears
(fan_in d_model), the attention output (heads x d_kv), the last FFN linear (d_ff) — except q, which is
N(0, 1/(d_model x d_kv)): the missing 1/sqrt(d_kv) moved into q's weights.  Word embeddings are
N(0, 1); the relative-position bias table is N(0, 1/d_model).  The output: T5 v1.0's tied one reads the
N(0, 1) table through a d_model^-0.5 rescale (our ``scale_tied_output``); an untied one (T5 v1.1) is
N(0, 1/d_model) here.  That is Mesh TensorFlow's effective draw — its untied softmax is another
N(0, 1) VocabEmbedding whose hidden_to_logits multiplies by d_model^-0.5 — rather than transformers'
N(0, 1) with no rescale, which starts a T5 v1.1 at logits of std sqrt(d_model) (loss ~37 instead of
~ln(vocab) on benchmarks/objectives_small.py's small model).

With BERT's 0.02 instead, a 0.02-wide q and k in a no-scale attention give logits ~1e-4 x d: every
head starts uniform and its gradient is tiny, and with N(0, 0.02) embeddings under pre-LN RMS norms
the residual stream is almost all the (0.02-scaled) layer outputs.  What is not part of T5 (an MLM or
RTD head, absolute position tables) keeps the BERT draw.
"""

import torch
from torch import nn

from uer.embeddings.word import WordEmbedding
from uer.layers.t5_position import T5RelativePosition
from uer.partitioned import gathered
from uer.targets.lm import LmTarget

ATTENTION_PROJECTIONS = ("attention.query", "attention.key", "attention.value", "attention.output")
FEED_FORWARD_PROJECTIONS = ("feed_forward.linear_1", "feed_forward.linear_gate", "feed_forward.linear_2")


def t5_std(name: str, linear: nn.Linear, head_size: int) -> float:
    """The std T5 draws a transformer layer's projection ``name`` with: 1/sqrt(fan_in), q also / sqrt(head_size)."""
    fan_in = linear.in_features
    return (fan_in * head_size) ** -0.5 if name.endswith("attention.query") else fan_in ** -0.5


def _normal(module: nn.Module, tensor: torch.Tensor, std: float) -> None:
    with gathered(module.parameters(recurse=False), modify=True):
        nn.init.normal_(tensor, std=std)


@torch.no_grad()
def apply_t5_init(model: nn.Module, head_size: int, hidden_size: int) -> int:
    """Redraw ``model``'s T5 parts with T5's stds (see the module docstring); returns how many tensors."""
    count = 0
    for name, module in model.named_modules():
        layer_part = ".layers." in f".{name}" and name.endswith(ATTENTION_PROJECTIONS + FEED_FORWARD_PROJECTIONS)
        if isinstance(module, nn.Linear) and layer_part:
            _normal(module, module.weight, t5_std(name, module, head_size))
        elif isinstance(module, WordEmbedding):
            _normal(module.embedding, module.embedding.weight, 1.0)
        elif isinstance(module, T5RelativePosition):
            _normal(module.embedding, module.embedding.weight, hidden_size ** -0.5)
        elif isinstance(module, LmTarget) and not module.tied:
            _normal(module, module.output_weight, hidden_size ** -0.5)
        else:
            continue
        count += 1
    return count

