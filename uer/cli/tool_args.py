"""Flags shared by the utility scripts (cloze test, neighbours, embeddings, vocabulary adapter)."""

import argparse

from uer.data.vocab import Vocab
from uer.errors import DataError


def add_vocab_args(p: argparse.ArgumentParser) -> None:
    """UER-py's --vocab_path / --spm_model_path pair, for scripts that need a vocabulary but no tokenizer."""
    p.add_argument("--vocab_path", default=None, help="Vocabulary, one token per line.")
    p.add_argument("--spm_model_path", default=None,
                   help="SentencePiece model: its pieces are the vocabulary (instead of --vocab_path).")


def vocab_from_args(args: argparse.Namespace) -> Vocab:
    if args.spm_model_path:
        return Vocab.from_spm(args.spm_model_path)
    if not args.vocab_path:
        raise DataError("--vocab_path (or --spm_model_path) is required: the vocabulary the model was trained with")
    return Vocab.load(args.vocab_path)


def add_load_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--load_model_path", "--pretrained_model_path", dest="load_model_path", required=True,
                   help="uer checkpoint (.bin / .safetensors).")


def add_config_arg(p: argparse.ArgumentParser, composite_only: bool = False) -> None:
    p.add_argument("--config_path", default=None,
                   help=("Only for composite (ELECTRA) checkpoints; " if composite_only else "Model config; ")
                   + "default: the config saved beside the weights (X.config.json, or X.json as "
                     "scripts/convert.py writes it).")


def check_minimums(*checks) -> None:
    """``checks``: (flag, value, smallest allowed) triples; the first violation is one error line."""
    from uer.errors import ConfigError
    for flag, value, low in checks:
        if value < low:
            raise ConfigError(f"{flag} must be ≥ {low}, got {value}")


def emit(text: str, prediction_path) -> str:
    """Print a report and, when asked, also write it (atomically) to ``prediction_path``."""
    from uer.utils import atomic_write_text
    print(text, end="")
    if prediction_path:
        atomic_write_text(prediction_path, text)
    return text
