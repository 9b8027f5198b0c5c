"""The LoRA / DyLoRA / freezing flags, shared by pretrain.py and the fine-tuning scripts.

TencentPretrain's names and defaults: --use_lora, --lora_r 8, --lora_alpha 16, --lora_dropout 0.0,
--lora_pretrained_model_path.  Ours beside them: --lora_targets, --dylora, --lora_min_r,
--freeze_prefixes (docs/lora.md).
"""

import argparse
from typing import List, Optional

from uer.errors import ConfigError
from uer.models.lora import DEFAULT_TARGETS, LoraConfig


def _names(values: Optional[List[str]]) -> List[str]:
    """Accept both "a,b" and "a b" (and a mix)."""
    out = []
    for value in values or []:
        out.extend(v for v in value.split(",") if v)
    return out


def add_lora_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LoRA / DyLoRA adapters and freezing (docs/lora.md)")
    g.add_argument("--use_lora", action="store_true",
                   help="Train low-rank adapters on the --lora_targets layers; every other parameter is frozen "
                        "and checkpoints hold only the adapters (TencentPretrain flag).")
    g.add_argument("--lora_r", type=int, default=8, help="Adapter rank (TencentPretrain flag).")
    g.add_argument("--lora_alpha", type=float, default=16.0,
                   help="Adapter scale numerator: the update is alpha/r * B A (TencentPretrain flag).")
    g.add_argument("--lora_dropout", type=float, default=0.0,
                   help="Dropout on the adapter's input (TencentPretrain flag).")
    g.add_argument("--lora_pretrained_model_path", default=None,
                   help="An adapter file (written by a --use_lora run) loaded over --pretrained_model_path "
                        "(TencentPretrain flag).")
    g.add_argument("--lora_targets", nargs="+", default=None, metavar="NAME",
                   help="Linear layers to adapt, matched on trailing name components, comma or space separated "
                        f"(default: {','.join(DEFAULT_TARGETS)}, as TencentPretrain; all four attention "
                        "projections: attention.query,attention.key,attention.value,attention.output).")
    g.add_argument("--dylora", action="store_true",
                   help="DyLoRA: each step trains with a rank drawn from --lora_min_r..--lora_r, so the adapter can "
                        "later be truncated to any of those ranks.")
    g.add_argument("--lora_min_r", type=int, default=1, help="Smallest rank DyLoRA trains (with --dylora).")
    g.add_argument("--freeze_prefixes", nargs="+", default=None, metavar="PREFIX",
                   help="Freeze every parameter whose name starts with one of these (comma or space separated), "
                        "e.g. embedding. encoder.layers.0. ; with or without --use_lora.")


def lora_config_from_args(args) -> Optional[LoraConfig]:
    """The LoRA config the flags ask for, validated; None without --use_lora."""
    if not args.use_lora:
        for flag in ("dylora", "lora_pretrained_model_path", "lora_targets"):
            if getattr(args, flag, None):
                raise ConfigError(f"--{flag} is given without --use_lora; add --use_lora (or drop --{flag})")
        return None
    targets = _names(args.lora_targets) or list(DEFAULT_TARGETS)
    return LoraConfig(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, targets=tuple(targets),
                      dynamic=args.dylora, min_r=args.lora_min_r, seed=int(getattr(args, "seed", 0) or 0)).validate()


def freeze_prefixes_from_args(args) -> List[str]:
    return _names(getattr(args, "freeze_prefixes", None))


def setup_lora(model, lora: Optional[LoraConfig], freeze: List[str], *, adapter_path: Optional[str] = None,
               trainable_prefixes=(), logger=None) -> Optional[dict]:
    """What the flags ask for, on a model whose base weights are loaded: adapters on the targets
    (everything else frozen but ``trainable_prefixes``), the adapter file loaded over them, then
    ``freeze`` prefixes frozen.  Returns ``adapter_summary`` (None without LoRA or freezing)."""
    from uer.models.lora import adapter_summary, apply_lora, freeze_by_prefix, load_lora_weights
    if lora is None and not freeze:
        return None
    if lora is not None:
        wrapped = apply_lora(model, lora, trainable_prefixes=trainable_prefixes)
        if logger is not None:
            logger.info("LoRA%s: r=%d alpha=%g dropout=%g on %d layers (%s)",
                        f" (DyLoRA, ranks {lora.min_r}..{lora.r})" if lora.dynamic else "", lora.r, lora.alpha,
                        lora.dropout, len(wrapped), ", ".join(lora.targets))
        if adapter_path:
            load_lora_weights(model, adapter_path, allow_missing=tuple(trainable_prefixes))
            if logger is not None:
                logger.info("adapter loaded from %s", adapter_path)
    if freeze:
        frozen = freeze_by_prefix(model, freeze)
        if logger is not None:
            logger.info("--freeze_prefixes %s: %d parameter tensors frozen", " ".join(freeze), len(frozen))
    summary = adapter_summary(model)
    if summary["trainable_params"] == 0:
        raise ConfigError("nothing is left to train: --freeze_prefixes (or --use_lora) froze every parameter")
    if logger is not None:
        logger.info("trainable parameters: %.3fM of %.2fM (%.2f%%)%s", summary["trainable_params"] / 1e6,
                    summary["total_params"] / 1e6, 100.0 * summary["trainable_params"] / summary["total_params"],
                    f"; each checkpoint holds {summary['saved_bytes'] / 2 ** 20:.2f} MiB (adapters) instead of "
                    f"{summary['total_bytes'] / 2 ** 20:.2f} MiB (full model)" if lora is not None else "")
    return summary
