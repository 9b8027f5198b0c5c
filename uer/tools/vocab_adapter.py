"""Adapt a checkpoint to a new vocabulary (UER-py's scripts/dynamic_vocab_adapter.py), e.g. to
shrink a general-domain model to a task's smaller vocabulary before fine-tuning.

Every tensor indexed by token id is adapted -- the word embedding and, when present, an untied MLM
/ LM output matrix, the output biases, an ELECTRA model's generator tables and unigram counts --
not a fixed list of key names: the model is built twice on the meta device (no memory, no
compute) with vocabularies 64 tokens apart, and the tensors (and the axis) whose shape changes are
the vocabulary-indexed ones.  For each such tensor, the row of a token in both vocabularies is
copied from the old row; a new token's row is drawn from N(0, 0.02) as UER-py does (parameters) or
set to the mean of the old vocabulary's rows (buffers such as unigram counts); the rows padding the
table to a multiple of 64 are zero.  Every other tensor is copied unchanged."""

from typing import Dict, Set, Tuple

import torch

from uer.config import ModelConfig
from uer.data.vocab import Vocab
from uer.errors import CheckpointError
from uer.models.weights import check_weights

INIT_STD = 0.02    # UER-py: np.random.normal(0, 0.02) for new embedding, softmax and bias rows

PASS_THROUGH = ("head.",)   # a fine-tuned model's task head: not vocabulary-sized, copied as it is


def _skeleton(config: ModelConfig, vocab_size: int, with_target: bool):
    from uer.models.model import build_model
    c = ModelConfig(**{**config.__dict__})
    c.vocab_size = vocab_size
    with torch.device("meta"):
        return build_model(c, with_target=with_target)


def _parameter_names(model) -> Set[str]:
    return {name for name, _ in model.named_parameters(remove_duplicate=False)}


def vocab_axes(config: ModelConfig, with_target: bool) -> Tuple[Dict[str, int], Set[str], object]:
    """key -> the axis indexed by token id, for every vocabulary-sized tensor of ``config``'s model;
    also the names that are parameters, and the meta model of ``config`` itself."""
    model = _skeleton(config, config.vocab_size, with_target)
    wider = _skeleton(config, config.vocab_size + 64, with_target)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wider_shapes = {k: tuple(v.shape) for k, v in wider.state_dict().items()}
    axes = {}
    for key, shape in shapes.items():
        changed = [ax for ax, (a, b) in enumerate(zip(shape, wider_shapes[key])) if a != b]
        if len(changed) > 1 or (changed and wider_shapes[key][changed[0]] - shape[changed[0]] != 64):
            raise CheckpointError(f"cannot tell which axis of {key} {shape} is the vocabulary")
        if changed:
            axes[key] = changed[0]
    return axes, _parameter_names(model), model


def adapt_state(state: Dict[str, torch.Tensor], config: ModelConfig, old_vocab: Vocab, new_vocab: Vocab,
                source: str = "<state dict>", seed: int = 7) -> Dict[str, torch.Tensor]:
    """``config``: the old model's config (its vocab_size the old vocabulary's).  The state must
    match that model strictly (a fine-tuned model's ``head.*`` tensors are copied unchanged)."""
    if config.vocab_size != len(old_vocab):
        raise ValueError("config.vocab_size must be the old vocabulary's size")
    with_target = bool(config.pretrainer) or any(k.startswith("target.") for k in state)
    axes, parameters, model = vocab_axes(config, with_target)
    check_weights(model, state, source, ignore_unexpected=PASS_THROUGH)
    if not axes:
        raise CheckpointError(f"{source}: no tensor of the model is indexed by the vocabulary")
    new_padded = ModelConfig(vocab_size=len(new_vocab)).padded_vocab_size
    shared = [(i, old_vocab.token_to_id(t)) for i, t in enumerate(new_vocab.tokens) if t in old_vocab]
    new_ids = torch.tensor([i for i, _ in shared], dtype=torch.long)
    old_ids = torch.tensor([j for _, j in shared], dtype=torch.long)
    fresh = torch.ones(len(new_vocab), dtype=torch.bool)
    fresh[new_ids] = False
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, tensor in state.items():
        if key not in axes:
            out[key] = tensor
            continue
        old = tensor.movedim(axes[key], 0).float()                      # (old rows, ...)
        new = torch.zeros((new_padded,) + tuple(old.shape[1:]), dtype=torch.float32)
        if key in parameters:
            init = torch.randn((int(fresh.sum()),) + tuple(old.shape[1:]), generator=generator) * INIT_STD
        else:
            init = old[: len(old_vocab)].mean(0, keepdim=True).expand((int(fresh.sum()),) + tuple(old.shape[1:]))
        new[: len(new_vocab)][fresh] = init
        new[new_ids] = old[old_ids]
        out[key] = new.to(tensor.dtype).movedim(0, axes[key]).contiguous()
    return out
