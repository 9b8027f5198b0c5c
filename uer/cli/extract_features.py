"""scripts/extract_features.py (UER-py's scripts/extract_feature.py): one vector per sentence from the
embedding + encoder of any uer checkpoint -- pretrained, fine-tuned, ELECTRA composite, or converted
from Hugging Face by scripts/convert.py.

    python scripts/extract_features.py --load_model_path models/bert.bin --vocab_path vocab.txt \
        --test_path sentences.txt --prediction_path features.pt --pooling mean

Input: one sentence per line, or a TSV whose header names ``text_a`` (and ``text_b`` for pairs).
Blank lines are skipped, so row i of the output is the i-th non-blank sentence.  Sentences are
encoded as fine-tuning encodes them ([CLS] a [SEP] (b [SEP])).  Output: a float32 tensor of shape
(sentences, hidden_size), saved with ``torch.save`` (as UER-py does), or as NumPy when the path ends
in ``.npy``.
"""

import argparse
import logging
import os
import time
from typing import List, Optional, Tuple

import numpy as np
import torch

from uer.cli.common import add_tokenizer_args, cli_entry, tokenizer_from_args
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.cli.model_args import add_model_override_args, find_config_for, model_overrides, set_vocab_size
from uer.config import ModelConfig, find_config_beside, load_config
from uer.errors import ConfigError, DataError
from uer.layers.pooling import pool
from uer.models import Model
from uer.models.pretrained import backbone_config, backbone_source
from uer.models.weights import load_weights
from uer.tasks.classification import ClassificationCollator, encode_pair
from uer.tasks.tsv import read_tsv
from uer.training.device import pick_device
from uer.utils import atomic_path, atomic_torch_save
from uer.data.text_files import open_text

logger = logging.getLogger("uer")

POOLINGS = ("first", "mean", "max", "last")
REPORT_SECONDS = 10.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Sentence vectors from the embedding + encoder of a uer checkpoint.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", "--pretrained_model_path", dest="load_model_path", required=True,
                   help="uer checkpoint (pretrained, fine-tuned or converted); pretraining and "
                        "classification heads in it are ignored.")
    p.add_argument("--config_path", default=None,
                   help="Model config; default: the config saved beside the weights (X.config.json, "
                        "or X.json as scripts/convert.py writes it).")
    add_tokenizer_args(p)
    p.add_argument("--test_path", required=True,
                   help="One sentence per line, or a TSV with a header naming text_a (and text_b).")
    p.add_argument("--prediction_path", required=True,
                   help="Output: float32 tensor (sentences, hidden_size); torch.save, or NumPy for .npy.")
    p.add_argument("--pooling", default="first", choices=POOLINGS,
                   help="first: the [CLS] position; mean/max: over the real tokens (padding excluded); "
                        "last: the last real token.")
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens per sentence after truncation; default min(128, the model's max_seq_length).")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", default="auto")
    add_model_override_args(p)
    return p


# --------------------------------------------------------------------------------------------- model

def load_encoder(args: argparse.Namespace, vocab_size: int, vocab_source: str) -> Tuple[Model, ModelConfig]:
    path = args.load_model_path
    if not os.path.isfile(path):
        raise DataError(f"--load_model_path {path} does not exist; pass a uer checkpoint (.bin / .safetensors)")
    config_path = args.config_path or find_config_for(path)
    if config_path is None:
        raise ConfigError(f"--config_path is required: no config was found beside {path} "
                          f"({path}.config.json or {os.path.splitext(path)[0]}.json)")
    config = load_config(config_path, model_overrides(args))
    set_vocab_size(config, vocab_size, vocab_source)
    state = backbone_source(config, path)
    config = backbone_config(config)       # a composite's discriminator: a plain embedding + encoder
    model = Model(config, with_target=False)
    # Strict for the embedding and encoder; heads (pretraining targets, a classifier, a converted
    # base model's pooler) are reported, not loaded.
    ignored = load_weights(model, state, ignore_unexpected=("target.", "head."), source=path)
    logger.info("loaded embedding + encoder from %s (config %s); %d head tensors not used%s", path,
                config_path, len(ignored), f": {', '.join(ignored[:6])}{' ...' if len(ignored) > 6 else ''}"
                if ignored else "")
    return model, config


# ---------------------------------------------------------------------------------------------- data

def read_sentences(path: str) -> List[Tuple[str, Optional[str]]]:
    """(text_a, text_b or None) per sentence: a TSV when the first line names a text_a column."""
    if not os.path.isfile(path):
        raise DataError(f"--test_path {path} does not exist; pass a file with one sentence per line "
                        "or a TSV with a text_a column")
    with open_text(path, f"--test_path {path}") as f:
        first = f.readline().rstrip("\r\n")
    if "text_a" in first.split("\t"):
        return [(row["text_a"], row.get("text_b")) for _, row in
                read_tsv(path, ("text_a",), ("text_b",), flag="--test_path")]
    with open_text(path, f"--test_path {path}") as f:
        sentences = [(line.rstrip("\r\n"), None) for line in f if line.strip()]
    if not sentences:
        raise DataError(f"--test_path {path} holds no sentences (it is empty or blank)")
    return sentences


def save_features(features: torch.Tensor, path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    if path.endswith(".npy"):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, features.numpy())
    else:
        atomic_torch_save(features, path)


# ---------------------------------------------------------------------------------------------- main

@torch.inference_mode()
def extract(model: Model, examples: List[dict], collator, pooling: str, batch_size: int,
            device: torch.device) -> torch.Tensor:
    model.eval()
    chunks, last_report = [], time.monotonic()
    for start in range(0, len(examples), batch_size):
        batch = collator(examples[start:start + batch_size])
        src, seg = batch["src"].to(device), batch["seg"].to(device)
        chunks.append(pool(model.encode(src, seg), seg, pooling).float().cpu())
        done = min(start + batch_size, len(examples))
        if time.monotonic() - last_report >= REPORT_SECONDS and done < len(examples):
            logger.info("%d/%d sentences", done, len(examples))
            last_report = time.monotonic()
    return torch.cat(chunks)


def run(args: argparse.Namespace) -> torch.Tensor:
    refuse_outputs_over_inputs(args, [Output("prediction_path")],
                               {"the config beside --load_model_path": find_config_beside(args.load_model_path)})
    if args.batch_size < 1:
        raise ConfigError(f"--batch_size must be ≥ 1, got {args.batch_size}")
    device = pick_device(args.device)
    tokenizer = tokenizer_from_args(args)
    tokenizer.vocab.require(("cls", "sep"), purpose="encoding sentences as [CLS] text [SEP]")
    vocab_source = args.spm_model_path or args.vocab_path or args.tokenizer
    model, config = load_encoder(args, len(tokenizer.vocab), vocab_source)
    seq_length = args.seq_length or min(128, config.max_seq_length)
    if not 3 <= seq_length <= config.max_seq_length:
        raise ConfigError(f"--seq_length {seq_length} must be between 3 and the model's max_seq_length "
                          f"{config.max_seq_length}")
    sentences = read_sentences(args.test_path)
    examples = [encode_pair(tokenizer, a, b, seq_length) for a, b in sentences]
    logger.info("%d sentences from %s, %s pooling, seq_length %d", len(examples), args.test_path,
                args.pooling, seq_length)
    model.to(device)
    # Padding is masked by seg == 0, so a vocabulary without a pad token may pad with any id.
    pad_id = tokenizer.vocab.pad_id if tokenizer.vocab.pad_id is not None else 0
    features = extract(model, examples, ClassificationCollator(pad_id), args.pooling, args.batch_size, device)
    save_features(features, args.prediction_path)
    logger.info("features %s -> %s", tuple(features.shape), args.prediction_path)
    return features


@cli_entry
def main(argv: Optional[List[str]] = None) -> torch.Tensor:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
