"""LoRA / DyLoRA on any uer model, and freezing parameters by name prefix.

The whole API, for pretrain.py and the one place task models are built:

    cfg = LoraConfig(r=8, alpha=16, dropout=0.0, targets=("attention.query", "attention.value"))
    wrapped = apply_lora(model, cfg, trainable_prefixes=("head.",))   # after the base weights are loaded
    load_lora_weights(model, "adapter.bin")        # optional: continue from an adapter
    load_base_weights(model, "base.bin")           # a plain checkpoint into an adapted model
    ... train: only the adapters (and parameters under trainable_prefixes) have requires_grad ...
    save_state(lora_state_dict(model), path)       # the adapter (+ trained head): small
    merge_lora(model)                              # fold the adapters in: plain nn.Linear layers again
    truncate_lora_rank(model, 4)                   # DyLoRA: keep the first 4 ranks
    freeze_by_prefix(model, ["embedding."])        # independent of LoRA

Targets are names of ``nn.Linear`` submodules, matched on whole trailing components: "query"
matches ``encoder.layers.3.attention.query``; "attention.output" matches the attention output
projection and not a head's ``output`` layer.  The default is TencentPretrain's choice (and the
LoRA paper's): the attention query and value projections.
"""

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from uer.errors import CheckpointError, ConfigError
from uer.layers.lora import LoRALinear, RankSampler
from uer.models.weights import load_weights, read_weights
from uer.partitioned import full_numel, full_shapes, gathered
from uer.utils import atomic_write_text

DEFAULT_TARGETS = ("attention.query", "attention.value")
ADAPTER_NAMES = ("lora_A", "lora_B")
FORMAT = "uer-lora"
VERSION = 1


@dataclass
class LoraConfig:
    r: int = 8                      # --lora_r (TencentPretrain's default)
    alpha: float = 16.0             # --lora_alpha; the adapter is scaled by alpha / rank
    dropout: float = 0.0            # --lora_dropout, on the adapter's input
    targets: Tuple[str, ...] = DEFAULT_TARGETS   # --lora_targets
    dynamic: bool = False           # --dylora
    min_r: int = 1                  # --lora_min_r: DyLoRA samples ranks from min_r..r
    seed: int = 0                   # adapter initialisation and DyLoRA rank draws (pretrain: --seed)

    def __post_init__(self):
        self.targets = tuple(self.targets)

    def validate(self) -> "LoraConfig":
        if not isinstance(self.r, int) or self.r <= 0:
            raise ConfigError(f"--lora_r (LoraConfig.r) must be a positive integer, got {self.r!r}")
        if self.alpha <= 0:
            raise ConfigError(f"--lora_alpha (LoraConfig.alpha) must be positive, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--lora_dropout (LoraConfig.dropout) must be in [0, 1), got {self.dropout}")
        if not self.targets or not all(isinstance(t, str) and t.strip(".") for t in self.targets):
            raise ConfigError(f"--lora_targets (LoraConfig.targets) must name Linear layers, e.g. "
                              f"{','.join(DEFAULT_TARGETS)}; got {list(self.targets)}")
        if self.dynamic and not 1 <= self.min_r <= self.r:
            raise ConfigError(f"--lora_min_r (LoraConfig.min_r) must be in 1..--lora_r ({self.r}) for DyLoRA, "
                              f"got {self.min_r}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "the LoRA config") -> "LoraConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown LoRA setting(s) {unknown}; known: {sorted(known)}")
        return cls(**d).validate()


# --------------------------------------------------------------------------------------- apply

def _matches(name: str, target: str) -> bool:
    target = target.strip(".")
    return name == target or name.endswith("." + target)


def _suffixes(names: Iterable[str]) -> List[str]:
    """Short names to offer in errors: the last two components, layer indices dropped."""
    out = set()
    for name in names:
        parts = [p for p in name.split(".") if not p.isdigit()]
        out.add(".".join(parts[-2:]))
    return sorted(out)


def lora_modules(model: nn.Module) -> Dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _replace_modules(model: nn.Module, replacement: Dict[int, nn.Module]) -> None:
    """Swap every reference to a replaced module (a module shared by two parents is swapped in both)."""
    for parent in model.modules():
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacement:
                parent._modules[child_name] = replacement[id(child)]


def apply_lora(model: nn.Module, cfg: LoraConfig, trainable_prefixes: Sequence[str] = ()) -> List[str]:
    """Wrap the ``cfg.targets`` Linear layers of ``model`` in LoRALinear (in place) and freeze every
    other parameter except those whose names start with one of ``trainable_prefixes`` (a task
    head: "head.").  Call it after the base weights are loaded (they keep their names, so loading
    before or after is the same) and before the optimizer is built.  Returns the wrapped names."""
    cfg.validate()
    if lora_modules(model):
        raise ConfigError("LoRA is already applied to this model (apply_lora was called twice)")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    chosen: Dict[str, nn.Linear] = {}
    for target in cfg.targets:
        found = [(n, m) for n, m in linears if _matches(n, target)]
        if not found:
            other = [type(m).__name__ for n, m in model.named_modules() if n and _matches(n, target)]
            what = f"matches {other[0]} modules, not nn.Linear" if other else "matches no nn.Linear in the model"
            raise ConfigError(f"--lora_targets: '{target}' {what}; Linear layers here: "
                              f"{', '.join(_suffixes(n for n, _ in linears))}")
        chosen.update(found)
    kept_prefixes = tuple(trainable_prefixes)
    names = [n for n, _ in model.named_parameters()]
    for prefix in kept_prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ConfigError(f"trainable prefix '{prefix}' matches no parameter of the model; parameter "
                              f"names start with: {', '.join(_top_prefixes(names))}")
    sampler = RankSampler(cfg.min_r, cfg.r, cfg.seed) if cfg.dynamic else None
    replacement, wrapped = {}, []
    for index, name in enumerate(n for n, _ in linears if n in chosen):     # model order
        base = chosen[name]
        layer = LoRALinear(base, cfg.r, cfg.alpha, cfg.dropout, min_r=cfg.min_r if cfg.dynamic else None,
                           seed=cfg.seed * 7919 + index)
        layer.rank_sampler = sampler
        layer.train(base.training)
        replacement[id(base)] = layer
        wrapped.append(name)
    _replace_modules(model, replacement)
    adapters = {id(p) for m in lora_modules(model).values() for p in (m.lora_A, m.lora_B)}
    for name, p in model.named_parameters():
        trained = id(p) in adapters or (bool(kept_prefixes) and name.startswith(kept_prefixes))
        p.requires_grad_(trained)
    if sampler is not None:
        _install_step_hook(model, sampler)
    model.lora_config = cfg
    return wrapped


def _install_step_hook(model: nn.Module, sampler: RankSampler) -> None:
    """The Trainer calls ``model.set_training_step(step)`` before each optimizer step; chain the
    DyLoRA rank draw onto it (keeping a model's own hook, e.g. ELECTRA's temperature schedule)."""
    previous = getattr(model, "set_training_step", None)

    def set_training_step(step: int) -> None:
        sampler.set_step(step)
        if previous is not None:
            previous(step)
    set_training_step.lora_previous = previous
    model.set_training_step = set_training_step


def _top_prefixes(names: Iterable[str]) -> List[str]:
    return sorted({n.split(".")[0] + "." for n in names})


# ------------------------------------------------------------------------------------- freezing

def freeze_by_prefix(model: nn.Module, prefixes: Sequence[str]) -> List[str]:
    """requires_grad=False for every parameter whose name starts with one of ``prefixes``.
    Returns the frozen names; a prefix matching nothing is an error (a typo would freeze nothing)."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ConfigError(f"--freeze_prefixes: '{prefix}' matches no parameter; parameter names start with: "
                              f"{', '.join(_top_prefixes(names))} (e.g. {names[0] if names else '-'})")
    frozen = []
    for name, p in model.named_parameters():
        if name.startswith(tuple(prefixes)):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


# ------------------------------------------------------------------------------ saving, loading

def _is_adapter_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ADAPTER_NAMES


def lora_state_keys(model: nn.Module) -> List[str]:
    """The keys ``lora_state_dict`` holds: every adapter matrix, plus every other parameter that is
    trained (requires_grad), so that base model + this file = the trained model."""
    keys = []
    for key, value in model.state_dict(keep_vars=True).items():
        if _is_adapter_key(key) or (isinstance(value, nn.Parameter) and value.requires_grad):
            keys.append(key)
    return keys


def lora_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The adapter weights (and trained non-adapter parameters, e.g. the task head) on the CPU.
    Under ZeRO-3 use the engine's gathered weights filtered by ``lora_state_keys`` instead."""
    state = model.state_dict()
    return {k: state[k].detach().cpu().clone() for k in lora_state_keys(model)}


def load_base_weights(model: nn.Module, path_or_state, *, allow_missing: Tuple[str, ...] = (),
                      ignore_unexpected: Tuple[str, ...] = (), source: Optional[str] = None) -> List[str]:
    """Load a plain (non-LoRA) checkpoint into a model that already has adapters: strict for every
    base weight (the wrapped layers kept their names); only the adapter matrices may be absent.
    (Loading before ``apply_lora`` with ``load_weights`` is the same.)  Returns the ignored keys."""
    adapters = tuple(k for k in model.state_dict() if _is_adapter_key(k))
    return load_weights(model, path_or_state, allow_missing=adapters + tuple(allow_missing),
                        ignore_unexpected=ignore_unexpected, source=source)


def load_lora_weights(model: nn.Module, path_or_state, *, allow_missing: Tuple[str, ...] = (),
                      source: Optional[str] = None) -> List[str]:
    """Load an adapter file over a LoRA model whose base weights are already loaded.  Strict: the
    file must hold exactly the model's ``lora_state_keys`` (those under ``allow_missing`` prefixes
    may be absent, e.g. a new task head when fine-tuning from a pretrained adapter), with the same
    shapes.  Works on a ZeRO-3 partitioned model (every rank reads the small file).  Returns the
    loaded keys."""
    is_path = isinstance(path_or_state, (str, os.PathLike))
    source = os.fspath(path_or_state) if is_path else (source or "<adapter state>")
    if not lora_modules(model):
        raise ConfigError(f"{source} is a LoRA adapter but the model has no LoRA layers; add --use_lora "
                          "with the settings it was trained with")
    state = read_weights(path_or_state) if is_path else path_or_state
    own = full_shapes(model)
    required = lora_state_keys(model)
    missing = [k for k in required if k not in state and not k.startswith(tuple(allow_missing))]
    not_in_model = [k for k in state if k not in own]
    not_adapter = [k for k in state if k in own and k not in required]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {own[k]}" for k in state
              if k in own and tuple(state[k].shape) != own[k]]
    problems = []
    if missing:
        problems.append(f"missing from the file: {_short(missing)}")
    if not_in_model:
        problems.append(f"not in the model: {_short(not_in_model)}")
    if not_adapter:
        problems.append(f"frozen base weights, not adapter weights: {_short(not_adapter)} (a full model "
                        "goes to --pretrained_model_path)")
    if shapes:
        problems.append(f"shape mismatches: {_short(shapes)}")
    if problems:
        hint = " (the adapter rank is lora_A's first dimension: match --lora_r)" if any(
            "lora_" in s for s in shapes) else ""
        raise CheckpointError(f"adapter {source} does not fit this LoRA model: " + "; ".join(problems) +
                              f". Use the --lora_r/--lora_targets/--dylora and --config_path it was trained "
                              f"with{hint}")
    params = dict(model.state_dict(keep_vars=True))
    with torch.no_grad():
        for key in state:
            target = params[key]
            with gathered([target], modify=True):
                target.data.copy_(state[key].to(dtype=target.dtype, device=target.device))
    return list(state)


def _short(keys: List[str], n: int = 6) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


# --------------------------------------------------------------------------- merging, DyLoRA

def merge_lora(model: nn.Module) -> List[str]:
    """Fold every adapter into its base weight (W += alpha/rank * B A, at ``active_rank`` when set)
    and put a plain nn.Linear back in its place; the model then has exactly the base model's
    parameter names and computes what the adapted model computed.  The base weights' requires_grad
    is left as it was (frozen after apply_lora).  Returns the merged layer names."""
    layers = lora_modules(model)
    replacement = {}
    with torch.no_grad():
        for name, layer in layers.items():
            rank = layer.active_rank if layer.active_rank is not None else layer.r
            with gathered([layer.weight, layer.lora_A, layer.lora_B], modify=True):
                layer.weight.data += layer.delta_weight(rank).to(layer.weight.dtype)
            plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
            plain.weight = layer.weight
            plain.register_parameter("bias", layer.bias)
            plain.train(layer.training)
            replacement[id(layer)] = plain
    _replace_modules(model, replacement)
    hook = getattr(model, "set_training_step", None)
    if hook is not None and hasattr(hook, "lora_previous"):
        del model.set_training_step                  # the DyLoRA step hook (an instance attribute)
        if hook.lora_previous is not None and getattr(model, "set_training_step", None) is None:
            model.set_training_step = hook.lora_previous
    if hasattr(model, "lora_config"):
        del model.lora_config
    return list(layers)


def set_lora_rank(model: nn.Module, rank: Optional[int]) -> None:
    """The rank every adapter uses outside training (DyLoRA: any rank in min_r..r; None: full)."""
    for name, layer in lora_modules(model).items():
        if rank is not None and not 1 <= rank <= layer.r:
            raise ConfigError(f"LoRA rank {rank} is outside 1..{layer.r} (the trained --lora_r) at {name}")
        layer.active_rank = rank


def truncate_lora_rank(model: nn.Module, rank: int) -> None:
    """DyLoRA: keep only the first ``rank`` rows of every A and columns of every B (scale
    alpha/rank), so the model computes what the DyLoRA model computes evaluated at that rank, with a
    smaller adapter.  The result is a fixed-rank LoRA model (it trains on at that rank).  Replaces
    the adapter Parameters: build the optimizer afterwards."""
    layers = lora_modules(model)
    if not layers:
        raise ConfigError("truncate_lora_rank: the model has no LoRA layers")
    for name, layer in layers.items():
        if not 1 <= rank <= layer.r:
            raise ConfigError(f"cannot truncate LoRA rank {layer.r} at {name} to {rank}: choose 1..{layer.r}")
        if layer.dynamic and rank < layer.min_r:
            raise ConfigError(f"DyLoRA at {name} was trained for ranks {layer.min_r}..{layer.r}; rank {rank} "
                              f"was never trained (choose {layer.min_r}..{layer.r})")
    with torch.no_grad():
        for layer in layers.values():
            grad_a, grad_b = layer.lora_A.requires_grad, layer.lora_B.requires_grad
            layer.lora_A = nn.Parameter(layer.lora_A[:rank].clone(), requires_grad=grad_a)
            layer.lora_B = nn.Parameter(layer.lora_B[:, :rank].clone(), requires_grad=grad_b)
            layer.r, layer.min_r, layer.active_rank = rank, None, None
            layer.rank_sampler = layer._own_sampler = None
    cfg = getattr(model, "lora_config", None)
    if cfg is not None:
        model.lora_config = LoraConfig(**{**cfg.to_dict(), "r": rank, "dynamic": False, "min_r": 1})


# ------------------------------------------------------------------------------ bookkeeping

def lora_config_path(weights_path: str) -> str:
    """Where the LoRA settings of a run (or an adapter file) are recorded: ``<path>.lora.json``."""
    return os.fspath(weights_path) + ".lora.json"


def save_lora_config(cfg: LoraConfig, path: str, **extra) -> None:
    """Write ``{"format": "uer-lora", "version": 1, "lora": {...}, **extra}`` atomically; ``extra``
    records e.g. the base model path and the trainable prefixes."""
    record = {"format": FORMAT, "version": VERSION, "lora": cfg.to_dict(), **extra}
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def load_lora_config(path: str) -> Tuple[LoraConfig, dict]:
    """Read a ``.lora.json``; returns (the LoRA config, the whole record)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"LoRA settings file {path} does not exist (pretrain.py --use_lora writes "
                              "<output_model_path>.lora.json beside the adapter)")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read LoRA settings {path}: {e}")
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("lora"), dict):
        raise CheckpointError(f"{path} is not a uer LoRA settings file (expected \"format\": \"{FORMAT}\")")
    return LoraConfig.from_dict(record["lora"], source=path), record


def adapter_summary(model: nn.Module) -> dict:
    """Parameter counts and bytes: what a LoRA checkpoint holds vs the whole model."""
    values = model.state_dict(keep_vars=True)
    keys = set(lora_state_keys(model))

    def count(items):     # a tensor shared under two names (tied weights) is stored once
        unique = {id(v): v for v in items}.values()
        return sum(full_numel(v) for v in unique), sum(full_numel(v) * v.element_size() for v in unique)
    saved_params, saved_bytes = count(values[k] for k in keys)
    total_params, total_bytes = count(values.values())
    trainable = count(p for p in model.parameters() if p.requires_grad)[0]
    return {"saved_params": saved_params, "saved_bytes": saved_bytes, "total_params": total_params,
            "total_bytes": total_bytes, "trainable_params": trainable}
