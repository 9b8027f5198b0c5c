"""scripts/convert.py: Hugging Face model directory <-> uer checkpoint + config.

    python scripts/convert.py --from hf --to uer --input_dir bert-base-chinese/ \
        --output_model_path models/bert_base.bin --output_config_path models/bert_base.json \
        --output_vocab_path models/bert_base_vocab.txt
    python scripts/convert.py --from uer --to hf --input_model_path models/bert_base.bin \
        --config_path models/bert_base.json --vocab_path models/bert_base_vocab.txt \
        --output_dir hf_bert/ --architecture bert
"""

import argparse
import json
import logging
import os
import shutil
from typing import List, Optional


from uer.cli.common import cli_entry, str_to_bool
from uer.config import load_config, save_config
from uer.convert.api import Converted, hf_to_uer, uer_to_hf
from uer.convert.hf_files import write_dir
from uer.errors import ConfigError, DataError
from uer.models.weights import read_weights
from uer.utils import atomic_path, atomic_torch_save, atomic_write_text

logger = logging.getLogger("uer")

HF_VOCABS = {"vocab.txt": "WordPiece vocabulary", "spiece.model": "SentencePiece model",
             "sentencepiece.bpe.model": "SentencePiece model", "vocab.json": "byte-level BPE vocabulary"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert models between Hugging Face directories and uer "
                                "checkpoints (BERT, RoBERTa, XLM-R, ALBERT, GPT-2).")
    p.add_argument("--from", dest="source", choices=["hf", "uer"], required=True)
    p.add_argument("--to", dest="dest", choices=["hf", "uer"], required=True)
    g = p.add_argument_group("--from hf --to uer")
    g.add_argument("--input_dir", help="Hugging Face model directory (config.json + model.safetensors "
                   "or pytorch_model.bin).")
    g.add_argument("--output_model_path", help="uer checkpoint to write (.bin, or .safetensors).")
    g.add_argument("--output_config_path", help="uer model config to write (default: the checkpoint "
                   "path with .json).")
    g.add_argument("--output_vocab_path", help="Copy the directory's vocab.txt here.")
    g.add_argument("--output_spm_model_path", help="Copy the directory's SentencePiece model here.")
    g = p.add_argument_group("--from uer --to hf")
    g.add_argument("--input_model_path", help="uer checkpoint.")
    g.add_argument("--config_path", help="uer model config the checkpoint was trained with.")
    g.add_argument("--output_dir", help="Hugging Face directory to write.")
    g.add_argument("--vocab_path", help="uer vocabulary: copied as vocab.txt; sets vocab_size and "
                   "pad_token_id when the config lacks them.")
    g.add_argument("--spm_model_path", help="uer SentencePiece model (ALBERT): copied as spiece.model.")
    g.add_argument("--do_lower_case", type=str_to_bool, nargs="?", const=True, default=True,
                   help="Written to tokenizer_config.json (default true).")
    g = p.add_argument_group("both directions")
    g.add_argument("--architecture", help="--to hf: a family (bert, roberta, xlm-roberta, albert, gpt2; "
                   "the class follows from what the checkpoint holds) or a Hugging Face class name. "
                   "--to uer: overrides config.json's architectures (e.g. BertForPreTraining).")
    g.add_argument("--discard", nargs="+", default=[], metavar="PREFIX",
                   help="Drop the source parameters whose names start with PREFIX, on purpose "
                        "(otherwise every parameter must find a place).")
    return p


def _need(args, parser, *names) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n)]
    if missing:
        parser.error(f"--from {args.source} --to {args.dest} needs {' '.join(missing)}")


def save_uer_state(state, path: str) -> None:
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, tmp)
    else:
        atomic_torch_save(state, path)


def _copy(src: str, dst: str) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def convert_hf_to_uer(input_dir: str, output_model_path: str, output_config_path: Optional[str] = None,
                      output_vocab_path: Optional[str] = None, output_spm_model_path: Optional[str] = None,
                      architecture: Optional[str] = None, discard=(), weights_path: Optional[str] = None
                      ) -> Converted:
    result = hf_to_uer(input_dir, architecture, discard, weights_path)
    save_uer_state(result.state, output_model_path)
    config_path = output_config_path or os.path.splitext(output_model_path)[0] + ".json"
    save_config(result.config, config_path)
    for wanted, names in ((output_vocab_path, ("vocab.txt",)),
                          (output_spm_model_path, ("spiece.model", "sentencepiece.bpe.model"))):
        if not wanted:
            continue
        found = [n for n in names if os.path.isfile(os.path.join(input_dir, n))]
        if not found:
            present = [n for n in HF_VOCABS if os.path.isfile(os.path.join(input_dir, n))]
            raise DataError(f"{input_dir} has no {' or '.join(names)} to copy (it has "
                            f"{', '.join(present) or 'no tokenizer files'}); uer has no byte-level BPE "
                            "tokenizer yet, so GPT-2/RoBERTa vocab.json + merges.txt cannot be used")
        _copy(os.path.join(input_dir, found[0]), wanted)
    for note in result.notes:
        logger.info("note: %s", note)
    logger.info("%s (%s) -> %s + %s [%s model, %d tensors]", input_dir, result.variant.hf_class,
                output_model_path, config_path, result.variant.kind, len(result.state))
    return result


def _special_ids(vocab_path: Optional[str], spm_model_path: Optional[str]):
    from uer.data.vocab import Vocab
    if vocab_path:
        vocab = Vocab.load(vocab_path)
    elif spm_model_path:
        vocab = Vocab.from_spm(spm_model_path)
    else:
        return None, {}
    special = {"pad_token_id": vocab.pad_id} if vocab.pad_id is not None else {}
    return len(vocab), special


def convert_uer_to_hf(input_model_path: str, config_path: str, output_dir: str, architecture: str,
                      vocab_path: Optional[str] = None, spm_model_path: Optional[str] = None,
                      do_lower_case: bool = True, discard=()) -> Converted:
    config = load_config(config_path)
    vocab_size, special = _special_ids(vocab_path, spm_model_path)
    if vocab_size is not None:
        if config.vocab_size and config.vocab_size != vocab_size:
            raise ConfigError(f"{config_path} says vocab_size {config.vocab_size} but the vocabulary "
                              f"{vocab_path or spm_model_path} has {vocab_size} tokens; pass the "
                              "vocabulary the model was trained with")
        config.vocab_size = vocab_size
    state = read_weights(input_model_path)
    result = uer_to_hf(state, config, architecture, discard, special)
    write_dir(output_dir, result.hf_config, result.state)
    tokenizer = {}
    if vocab_path:
        _copy(vocab_path, os.path.join(output_dir, "vocab.txt"))
        tokenizer = {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case}
    elif spm_model_path:
        if result.family != "albert":
            raise ConfigError(f"--spm_model_path: only ALBERT directories take a uer SentencePiece model "
                              f"(spiece.model); {result.family} tokenizers number their pieces differently")
        _copy(spm_model_path, os.path.join(output_dir, "spiece.model"))
        tokenizer = {"tokenizer_class": "AlbertTokenizer", "do_lower_case": do_lower_case}
    if tokenizer:
        tokenizer["model_max_length"] = config.max_seq_length
        atomic_write_text(os.path.join(output_dir, "tokenizer_config.json"), json.dumps(tokenizer, indent=2) + "\n")
    for note in result.notes:
        logger.info("note: %s", note)
    logger.info("%s -> %s (%s, %d tensors)", input_model_path, output_dir, result.variant.hf_class,
                len(result.state))
    return result


@cli_entry
def main(argv: Optional[List[str]] = None) -> Converted:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.source == args.dest:
        parser.error("--from and --to must differ (hf -> uer or uer -> hf)")
    if args.source == "hf":
        _need(args, parser, "input_dir", "output_model_path")
        return convert_hf_to_uer(args.input_dir, args.output_model_path, args.output_config_path,
                                 args.output_vocab_path, args.output_spm_model_path, args.architecture,
                                 args.discard)
    _need(args, parser, "input_model_path", "config_path", "output_dir", "architecture")
    return convert_uer_to_hf(args.input_model_path, args.config_path, args.output_dir, args.architecture,
                             args.vocab_path, args.spm_model_path, args.do_lower_case, args.discard)


# ------------------------------------------------------------------------------------------------
# UER-py compatible shim: scripts/convert_bert_from_huggingface_to_uer.py
# ------------------------------------------------------------------------------------------------

def build_bert_shim_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="UER-py's convert_bert_from_huggingface_to_uer.py flags, "
                                "over scripts/convert.py. Sizes come from the config.json beside the "
                                "input file.")
    p.add_argument("--input_model_path", required=True,
                   help="pytorch_model.bin / model.safetensors (config.json must sit beside it), or the "
                        "Hugging Face directory.")
    p.add_argument("--output_model_path", required=True)
    p.add_argument("--output_config_path", default=None,
                   help="uer config to write (default: the checkpoint path with .json).")
    p.add_argument("--layers_num", type=int, default=None,
                   help="Accepted for UER-py scripts; checked against config.json, never used to size.")
    p.add_argument("--target", choices=["bert", "mlm"], default="bert",
                   help="bert: BertForPreTraining (mlm + sp); mlm: BertForMaskedLM.")
    p.add_argument("--discard", nargs="+", default=[], metavar="PREFIX",
                   help="Drop parameters on purpose, e.g. --discard bert.pooler. cls.seq_relationship. "
                        "with --target mlm (UER-py dropped them silently).")
    return p


@cli_entry
def bert_shim_main(argv: Optional[List[str]] = None) -> Converted:
    args = build_bert_shim_parser().parse_args(argv)
    path = args.input_model_path
    input_dir, weights = (path, None) if os.path.isdir(path) else (os.path.dirname(path) or ".", path)
    from uer.convert.hf_files import read_config
    hf = read_config(input_dir)
    if args.layers_num is not None and args.layers_num != hf.get("num_hidden_layers"):
        raise ConfigError(f"--layers_num {args.layers_num} but {input_dir}/config.json says "
                          f"num_hidden_layers {hf.get('num_hidden_layers')}; drop --layers_num")
    architecture = "BertForPreTraining" if args.target == "bert" else "BertForMaskedLM"
    return convert_hf_to_uer(input_dir, args.output_model_path, args.output_config_path,
                             architecture=architecture, discard=args.discard, weights_path=weights)
