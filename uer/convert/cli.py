"""scripts/convert.py: Hugging Face model directory <-> uer checkpoint + config, and UER-py /
TencentPretrain checkpoint + config.json <-> uer checkpoint + config.

    python scripts/convert.py --from hf --to uer --input_dir bert-base-chinese/ \
        --output_model_path models/bert_base.bin --output_config_path models/bert_base.json \
        --output_vocab_path models/bert_base_vocab.txt
    python scripts/convert.py --from uer --to hf --input_model_path models/bert_base.bin \
        --config_path models/bert_base.json --vocab_path models/bert_base_vocab.txt \
        --output_dir hf_bert/ --architecture bert
    python scripts/convert.py --from uer_py --to uer --input_model_path uer_py/model.bin \
        --input_config_path uer_py/config.json --output_model_path models/from_uer_py.bin
    python scripts/convert.py --from uer --to uer_py --input_model_path models/from_uer_py.bin \
        --config_path models/from_uer_py.json --output_model_path uer_py/back.bin

GPT-2 / RoBERTa byte-level BPE tokenizers travel as vocab.json + merges.txt: --output_vocab_path and
--output_merges_path copy them out of a Hugging Face directory (use them with --tokenizer bpe
--vocab_path ... --merges_path ...); --vocab_path vocab.json --merges_path merges.txt write them,
with a tokenizer_config.json naming GPT2Tokenizer or RobertaTokenizer, into one.  A byte-level BPE
tokenizer.json (LLaMA-3, Qwen2, SmolLM, BLOOM directories) becomes the same two files, its rules kept
in merges.txt's first line (uer/convert/hf_tokenizer.py), and goes back as tokenizer.json; a LLaMA-1/2
or Mistral tokenizer.model travels as it is (--output_spm_model_path / --spm_model_path).
"""

import argparse
import json
import logging
import os
import shutil
from typing import Callable, List, Optional, Tuple


from uer.cli.common import cli_entry, str_to_bool
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.config import load_config, save_config
from uer.convert.api import Converted, hf_to_uer, uer_to_hf
from uer.convert.hf_files import write_dir
from uer.errors import ConfigError, DataError
from uer.models.weights import read_weights
from uer.utils import atomic_path, atomic_torch_save, atomic_write_text

logger = logging.getLogger("uer")

# Every file --to hf may write into --output_dir.
HF_DIR_FILES = ("config.json", "model.safetensors", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                "tokenizer_config.json", "tokenizer.json", "tokenizer.model")
UER_OUTPUTS = [Output("output_model_path"), Output("output_config_path"), Output("output_vocab_path"),
               Output("output_merges_path"), Output("output_spm_model_path")]

HF_VOCABS = {"vocab.txt": "WordPiece vocabulary", "spiece.model": "SentencePiece model",
             "sentencepiece.bpe.model": "SentencePiece model", "tokenizer.model": "SentencePiece model",
             "vocab.json": "byte-level BPE vocabulary", "tokenizer.json": "tokenizers file"}
SPM_FILES = ("spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# The Hugging Face tokenizer class of a byte-level BPE directory, by converter family.
BPE_TOKENIZER_CLASSES = {"gpt2": "GPT2Tokenizer", "roberta": "RobertaTokenizer"}
# Families whose byte-level BPE lives in tokenizer.json (read even beside a vocab.json + merges.txt, which
# lack its added tokens and pattern), and those whose SentencePiece model is a tokenizer.model.
TOKENIZER_JSON_FAMILIES = ("llama", "mistral", "qwen2", "bloom")
SPM_TOKENIZER_CLASSES = {"albert": ("spiece.model", "AlbertTokenizer"), "llama": ("tokenizer.model", "LlamaTokenizer"),
                         "mistral": ("tokenizer.model", "LlamaTokenizer")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Convert models between Hugging Face directories, UER-py / "
                                "TencentPretrain checkpoints and uer checkpoints (BERT, RoBERTa, XLM-R, ALBERT, "
                                "GPT-2, ELECTRA, DeBERTa, T5, BART, LLaMA, Mistral, Qwen2, BLOOM ...).")
    p.add_argument("--from", dest="source", choices=sorted({s for s, _ in DIRECTIONS}), required=True)
    p.add_argument("--to", dest="dest", choices=sorted({d for _, d in DIRECTIONS}), required=True)
    g = p.add_argument_group("--from hf --to uer")
    g.add_argument("--input_dir", help="Hugging Face model directory (config.json + model.safetensors "
                   "or pytorch_model.bin).")
    g.add_argument("--output_model_path", help="uer checkpoint to write (.bin, or .safetensors).")
    g.add_argument("--output_config_path", help="uer model config to write (default: the checkpoint "
                   "path with .json).")
    g.add_argument("--output_vocab_path", help="Copy the directory's vocabulary here: vocab.txt (WordPiece), "
                   "or vocab.json for a byte-level BPE (GPT-2, RoBERTa, or converted from a tokenizer.json: "
                   "LLaMA-3, Qwen2, BLOOM; then --output_merges_path too).")
    g.add_argument("--output_merges_path", help="Copy the directory's merges.txt (byte-level BPE) here; use "
                   "the pair as --tokenizer bpe --vocab_path VOCAB.json --merges_path MERGES.txt.")
    g.add_argument("--output_spm_model_path", help="Copy the directory's SentencePiece model here (spiece.model, "
                   "sentencepiece.bpe.model, or LLaMA-1/2's tokenizer.model); T5's gets its added sentinels "
                   "appended at their ids, PEGASUS's renumbered as its tokenizer numbers it (+103); refused for Marian, "
                   "whose ids come from vocab.json.")
    g = p.add_argument_group("--from uer --to hf")
    g.add_argument("--input_model_path", help="uer checkpoint.")
    g.add_argument("--config_path", help="uer model config the checkpoint was trained with.")
    g.add_argument("--output_dir", help="Hugging Face directory to write.")
    g.add_argument("--vocab_path", help="uer vocabulary: copied as vocab.txt, or as vocab.json with "
                   "--merges_path (byte-level BPE); sets vocab_size and the special token ids.")
    g.add_argument("--merges_path", help="merges.txt of a byte-level BPE vocabulary: written with --vocab_path's "
                   "vocab.json and a GPT2Tokenizer/RobertaTokenizer config (gpt2, roberta), or as a tokenizer.json "
                   "(llama, mistral, qwen2, bloom).")
    g.add_argument("--spm_model_path", help="uer SentencePiece model: copied as spiece.model (ALBERT) or "
                   "tokenizer.model (LLaMA, Mistral); T5: spiece.model without its tail <extra_id_N> sentinels, "
                   "re-added by tokenizer_config.json's extra_ids at the same ids.")
    g.add_argument("--do_lower_case", type=str_to_bool, nargs="?", const=True, default=True,
                   help="Written to tokenizer_config.json (default true).")
    g = p.add_argument_group("--from uer_py --to uer / --from uer --to uer_py (UER-py / TencentPretrain)",
                             "--from uer_py: --input_model_path (their .bin) --input_config_path (their "
                             "config.json) --output_model_path [--output_config_path: our config, default beside "
                             "the output]. --from uer: --input_model_path --config_path (ours) "
                             "--output_model_path [--output_config_path: their config.json, default beside the "
                             "output] [--vocab_path].")
    g.add_argument("--input_config_path", help="--from uer_py: the UER-py model config the checkpoint was "
                   "trained with (its --config_path, e.g. models/bert/base_config.json).")
    g.add_argument("--kind", choices=["classifier", "regression", "multi_label", "dbqa", "tagger", "mrc", "c3", "chid"],
                   help="--from uer_py: the finetune/run_*.py script that wrote a fine-tuned checkpoint (default: "
                   "recognised from its head's keys; asked for where shapes are ambiguous). Writes <out>.task.json "
                   "for inference/run_*_infer.py. --to uer_py reads the task from <input>.task.json.")
    g.add_argument("--pooling", choices=["first", "last", "mean", "max"], default=None,
                   help="--from uer_py --kind classifier: the --pooling the model was fine-tuned with (default: "
                   "its config's, else first).")
    g = p.add_argument_group("both directions")
    g.add_argument("--architecture", help="--to hf: a family (bert, roberta, xlm-roberta, albert, gpt2, llama, "
                   "mistral, qwen2, bloom, modernbert ...; "
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


def _reads_tokenizer_json(input_dir: str) -> bool:
    """Whether the byte-level BPE to carry is the directory's tokenizer.json (not vocab.json + merges.txt)."""
    def has(name: str) -> bool:
        return os.path.isfile(os.path.join(input_dir, name))

    if not has("tokenizer.json") or has("vocab.txt"):
        return False
    if not (has("vocab.json") and has("merges.txt")):
        return True
    from uer.convert.hf_files import read_config
    return read_config(input_dir).get("model_type") in TOKENIZER_JSON_FAMILIES


def _tokenizer_copies(input_dir: str, vocab: Optional[str], merges: Optional[str],
                      spm_model: Optional[str]) -> Tuple[List[Tuple[str, str]], Optional[Callable[[], None]]]:
    """(source file in the directory, destination) for each tokenizer file asked for, and the writer of
    the bpe files converted from a tokenizer.json; checked before anything is written, so a wrong request
    leaves no half-converted output."""
    def has(name: str) -> bool:
        return os.path.isfile(os.path.join(input_dir, name))

    present = [n for n in HF_VOCABS if has(n)] + (["merges.txt"] if has("merges.txt") else [])
    holds = f"(it has {', '.join(present) or 'no tokenizer files'})"
    if (vocab or merges) and _reads_tokenizer_json(input_dir):
        if not (vocab and merges):
            raise ConfigError(f"{input_dir} holds a byte-level BPE tokenizer (tokenizer.json): pass both "
                              "--output_vocab_path (vocab.json) and --output_merges_path (merges.txt)")
        from uer.convert.hf_tokenizer import read_tokenizer_json, write_bpe_files
        files = read_tokenizer_json(input_dir)
        copies, _ = _tokenizer_copies(input_dir, None, None, spm_model)
        return copies, lambda: write_bpe_files(files, vocab, merges)
    bpe = not has("vocab.txt") and has("vocab.json")
    copies = []
    if vocab:
        if not (has("vocab.txt") or bpe):
            raise DataError(f"--output_vocab_path: {input_dir} has no vocab.txt or vocab.json to copy {holds}")
        if bpe and not merges:
            raise ConfigError(f"{input_dir} holds a byte-level BPE tokenizer (vocab.json + merges.txt): pass "
                              "--output_merges_path as well, the vocabulary is unusable without its merges")
        copies.append(("vocab.json" if bpe else "vocab.txt", vocab))
    if merges:
        if not (has("merges.txt") and has("vocab.json")):
            raise DataError(f"--output_merges_path: {input_dir} has no byte-level BPE tokenizer "
                            f"(vocab.json + merges.txt) {holds}")
        if not vocab:
            raise ConfigError("--output_merges_path needs --output_vocab_path (where vocab.json goes)")
        copies.append(("merges.txt", merges))
    if spm_model:
        found = [n for n in SPM_FILES if has(n)]
        if not found:
            hint = "; for its byte-level BPE use --output_vocab_path and --output_merges_path" \
                if bpe or has("tokenizer.json") else ""
            raise DataError(f"--output_spm_model_path: {input_dir} has no {', '.join(SPM_FILES)} to copy "
                            f"{holds}{hint}")
        copies.append((found[0], spm_model))
    return copies, None


def _family_spm_model(input_dir: str, spm_model: Optional[str]) -> Optional[bytes]:
    """A T5 directory's spiece.model with its sentinels appended (uer/convert/t5_spm.py), a PEGASUS one's
    renumbered as its tokenizer numbers it (uer/convert/pegasus_spm.py); None where the
    model is copied as it is.  Refuses the families whose ids are not the SentencePiece model's."""
    if not spm_model or not os.path.isfile(os.path.join(input_dir, "config.json")):
        return None
    from uer.convert.hf_files import read_config
    from uer.convert.t5_spm import spm_refusal, t5_spm_with_sentinels
    model_type = read_config(input_dir).get("model_type")
    refusal = spm_refusal(model_type)
    if refusal is not None:
        raise ConfigError(f"--output_spm_model_path: {input_dir} is a {model_type} model: {refusal[0]}")
    path = os.path.join(input_dir, "spiece.model")
    if model_type == "t5" and os.path.isfile(path):
        return t5_spm_with_sentinels(input_dir, path)
    if model_type == "pegasus" and os.path.isfile(path):
        from uer.convert.pegasus_spm import pegasus_spm_with_offset
        return pegasus_spm_with_offset(input_dir, path)
    return None


def convert_hf_to_uer(input_dir: str, output_model_path: str, output_config_path: Optional[str] = None,
                      output_vocab_path: Optional[str] = None, output_spm_model_path: Optional[str] = None,
                      architecture: Optional[str] = None, discard=(), weights_path: Optional[str] = None,
                      output_merges_path: Optional[str] = None) -> Converted:
    spm_bytes = _family_spm_model(input_dir, output_spm_model_path)
    copies, write_bpe = _tokenizer_copies(input_dir, output_vocab_path, output_merges_path, output_spm_model_path)
    if spm_bytes is not None:         # written below in place of the plain copy
        copies = [(name, dst) for name, dst in copies if dst != output_spm_model_path]
    result = hf_to_uer(input_dir, architecture, discard, weights_path)
    save_uer_state(result.state, output_model_path)
    config_path = output_config_path or os.path.splitext(output_model_path)[0] + ".json"
    save_config(result.config, config_path)
    for name, dst in copies:
        _copy(os.path.join(input_dir, name), dst)
    if write_bpe is not None:
        write_bpe()
    if spm_bytes is not None:
        from uer.convert.t5_spm import write_bytes
        write_bytes(output_spm_model_path, spm_bytes)
    for note in result.notes:
        logger.info("note: %s", note)
    logger.info("%s (%s) -> %s + %s [%s model, %d tensors]", input_dir, result.variant.hf_class,
                output_model_path, config_path, result.variant.kind, len(result.state))
    return result


def _special_ids(vocab_path: Optional[str], spm_model_path: Optional[str], merges_path: Optional[str] = None,
                 family: str = ""):
    from uer.data.vocab import Vocab
    if merges_path:
        from uer.data.tokenizers import build_tokenizer
        tokenizer = build_tokenizer("bpe", vocab_path, merges_path=merges_path)
        vocab = tokenizer.vocab
        if tokenizer.named_special is not None:        # from a tokenizer.json: the tokens it named
            return len(vocab), {f"{k}_token_id": vocab.token_to_id(t) for k, t in tokenizer.named_special.items()
                                if k in ("bos", "eos", "pad") and t in vocab}
        if vocab.special.cls == vocab.special.pad:      # GPT-2: <|endoftext|> starts and ends texts
            return len(vocab), {"bos_token_id": vocab.cls_id, "eos_token_id": vocab.sep_id}
        special = {"pad_token_id": vocab.pad_id, "bos_token_id": vocab.cls_id, "eos_token_id": vocab.sep_id}
        return len(vocab), {k: v for k, v in special.items() if v is not None}
    if vocab_path:
        vocab = Vocab.load(vocab_path)
    elif spm_model_path:
        vocab = Vocab.from_spm(spm_model_path)
    else:
        return None, {}
    special = {"pad_token_id": vocab.pad_id} if vocab.pad_id is not None else {}
    if family in TOKENIZER_JSON_FAMILIES:        # LLaMA's <s> / </s> start and end texts
        special.update({k: v for k, v in (("bos_token_id", vocab.cls_id), ("eos_token_id", vocab.sep_id))
                        if v is not None})
    if family == "modernbert":                   # its config.json names [CLS] as cls/bos, [SEP] as sep/eos
        special.update({k: v for k, v in (("cls_token_id", vocab.cls_id), ("bos_token_id", vocab.cls_id),
                                          ("sep_token_id", vocab.sep_id), ("eos_token_id", vocab.sep_id))
                        if v is not None})
    return len(vocab), special


def _spm_special_tokens(spm_model_path: str):
    """LLaMA's tokenizer_config.json entries: the model's <s> / </s> / <unk>, a start token before texts."""
    from uer.data.vocab import Vocab
    vocab = Vocab.from_spm(spm_model_path)
    named = {"bos_token": vocab.special.cls, "eos_token": vocab.special.sep, "unk_token": vocab.special.unk}
    out = {k: v for k, v in named.items() if v in vocab}
    out.update({"add_bos_token": "bos_token" in out, "add_eos_token": False})
    return out


def convert_uer_to_hf(input_model_path: str, config_path: str, output_dir: str, architecture: str,
                      vocab_path: Optional[str] = None, spm_model_path: Optional[str] = None,
                      do_lower_case: bool = True, discard=(), merges_path: Optional[str] = None) -> Converted:
    if merges_path and not vocab_path:
        raise ConfigError("--merges_path needs --vocab_path (the vocab.json it belongs to)")
    config = load_config(config_path)
    from uer.convert.api import resolve_architecture
    family = resolve_architecture(architecture)[0].family
    from uer.convert.t5_spm import check_t5_spm, spm_refusal, t5_tokenizer_files
    from uer.convert.pegasus_spm import check_pegasus_spm, pegasus_tokenizer_files
    if spm_model_path and spm_refusal(family) is not None:
        raise ConfigError(f"--spm_model_path: {spm_refusal(family)[1]}")
    if spm_model_path and family in ("t5", "pegasus"):     # before the weights are read
        (check_t5_spm if family == "t5" else check_pegasus_spm)(spm_model_path)
    vocab_size, special = _special_ids(vocab_path, spm_model_path, merges_path, family)
    if vocab_size is not None:
        if config.vocab_size and config.vocab_size != vocab_size:
            raise ConfigError(f"{config_path} says vocab_size {config.vocab_size} but the vocabulary "
                              f"{vocab_path or spm_model_path} has {vocab_size} tokens; pass the "
                              "vocabulary the model was trained with")
        config.vocab_size = vocab_size
    state = read_weights(input_model_path)
    from uer.tasks.runner import read_task_info
    info = read_task_info(input_model_path)
    label2id = info.get("label2id") if isinstance(info.get("label2id"), dict) else None
    names = [t for t, _ in sorted(label2id.items(), key=lambda kv: kv[1])] if label2id else None
    if names is not None and len(names) != config.labels_num:
        names = None
    result = uer_to_hf(state, config, architecture, discard, special, label_names=names, head=info.get("head"))
    bpe_families = tuple(BPE_TOKENIZER_CLASSES) + TOKENIZER_JSON_FAMILIES
    if merges_path and result.family not in bpe_families:
        raise ConfigError(f"--merges_path: {result.family} directories have no byte-level BPE tokenizer "
                          f"(only {', '.join(bpe_families)}); drop --merges_path")
    if spm_model_path and result.family not in (*SPM_TOKENIZER_CLASSES, "t5", "pegasus"):
        raise ConfigError(f"--spm_model_path: only {', '.join(SPM_TOKENIZER_CLASSES)}, t5, pegasus directories take a uer "
                          f"SentencePiece model; {result.family} tokenizers number their pieces differently")
    write_dir(output_dir, result.hf_config, result.state)
    tokenizer = {}
    if merges_path and result.family in TOKENIZER_JSON_FAMILIES:
        from uer.convert.hf_tokenizer import tokenizer_json_from_bpe
        data, named = tokenizer_json_from_bpe(vocab_path, merges_path)
        atomic_write_text(os.path.join(output_dir, "tokenizer.json"), json.dumps(data, ensure_ascii=False) + "\n")
        tokenizer = {"tokenizer_class": "PreTrainedTokenizerFast", **named}
    elif merges_path:
        _copy(vocab_path, os.path.join(output_dir, "vocab.json"))
        _copy(merges_path, os.path.join(output_dir, "merges.txt"))
        tokenizer = {"tokenizer_class": BPE_TOKENIZER_CLASSES[result.family], "add_prefix_space": False}
    elif vocab_path:
        _copy(vocab_path, os.path.join(output_dir, "vocab.txt"))
        tokenizer = {"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case}
    elif spm_model_path and result.family == "t5":
        tokenizer = t5_tokenizer_files(spm_model_path, output_dir)
    elif spm_model_path and result.family == "pegasus":
        tokenizer = pegasus_tokenizer_files(spm_model_path, output_dir)
    elif spm_model_path:
        name, tokenizer_class = SPM_TOKENIZER_CLASSES[result.family]
        _copy(spm_model_path, os.path.join(output_dir, name))
        tokenizer = {"tokenizer_class": tokenizer_class, "do_lower_case": do_lower_case} if result.family == "albert" \
            else {"tokenizer_class": tokenizer_class, **_spm_special_tokens(spm_model_path)}
    if tokenizer:
        tokenizer["model_max_length"] = config.max_seq_length
        atomic_write_text(os.path.join(output_dir, "tokenizer_config.json"), json.dumps(tokenizer, indent=2) + "\n")
    for note in result.notes:
        logger.info("note: %s", note)
    logger.info("%s -> %s (%s, %d tensors)", input_model_path, output_dir, result.variant.hf_class,
                len(result.state))
    return result


def convert_uer_py_to_uer(input_model_path: str, input_config_path: str, output_model_path: str,
                          output_config_path: Optional[str] = None, kind: Optional[str] = None,
                          pooling: Optional[str] = None) -> Converted:
    """A UER-py / TencentPretrain checkpoint + its config.json -> our checkpoint + our config (and, for a
    model of their finetune/run_*.py scripts, <out>.task.json: uer/convert/uer_py_heads.py)."""
    from uer.convert.uer_py import read_uer_py_config, uer_py_to_uer
    from uer.convert.uer_py_heads import is_uer_py_task_state, uer_py_task_to_uer
    data = read_uer_py_config(input_config_path)
    state, info = read_weights(input_model_path), None
    if kind is not None or is_uer_py_task_state(state):
        result, info = uer_py_task_to_uer(state, data, input_config_path, input_model_path, kind, pooling)
        logger.info("recognised a UER-py fine-tuned '%s' model (%s head, task %s)%s", result.variant.kind,
                    info["head"], info["task"], "" if kind else " from its keys; pass --kind to choose another")
    else:
        result = uer_py_to_uer(state, data, input_config_path, input_model_path)
    save_uer_state(result.state, output_model_path)
    config_path = output_config_path or os.path.splitext(output_model_path)[0] + ".json"
    save_config(result.config, config_path)
    if info is not None:
        atomic_write_text(output_model_path + ".task.json", json.dumps(info, ensure_ascii=False) + "\n")
    for note in result.notes:
        logger.info("note: %s", note)
    logger.info("%s (UER-py, %s) -> %s + %s [%d tensors]", input_model_path, "+".join(result.config.target),
                output_model_path, config_path, len(result.state))
    return result


def convert_uer_to_uer_py(input_model_path: str, config_path: str, output_model_path: str,
                          output_config_path: Optional[str] = None, vocab_path: Optional[str] = None) -> Converted:
    """Our checkpoint + config -> a UER-py state dict (torch.save, their names, tied copies under both
    names) + the UER-py config.json to pass as their --config_path."""
    from uer.convert.uer_py import uer_to_uer_py
    config = load_config(config_path)
    vocab_size, _ = _special_ids(vocab_path, None)
    if vocab_size is not None:
        if config.vocab_size and config.vocab_size != vocab_size:
            raise ConfigError(f"{config_path} says vocab_size {config.vocab_size} but the vocabulary {vocab_path} "
                              f"has {vocab_size} tokens; pass the vocabulary the model was trained with")
        config.vocab_size = vocab_size
    task_info = input_model_path + ".task.json"
    if os.path.isfile(task_info):       # a fine-tuned model: UER-py's task script's head names
        from uer.convert.uer_py_heads import uer_task_to_uer_py
        with open(task_info, encoding="utf-8") as f:
            result = uer_task_to_uer_py(read_weights(input_model_path), config, json.load(f), config_path)
    else:
        result = uer_to_uer_py(read_weights(input_model_path), config, config_path)
    if output_model_path.endswith(".safetensors"):
        raise ConfigError("--output_model_path: UER-py reads torch.save files (.bin), not safetensors")
    atomic_torch_save(result.state, output_model_path)
    out_config = output_config_path or os.path.splitext(output_model_path)[0] + ".json"
    atomic_write_text(out_config, json.dumps(result.hf_config, indent=2) + "\n")
    logger.info("%s -> %s (UER-py, %d tensors) + %s (its --config_path)", input_model_path, output_model_path,
                len(result.state), out_config)
    return result


def _hf_to_uer_main(args, parser) -> Converted:
    _need(args, parser, "input_dir", "output_model_path")
    args.output_config_path = args.output_config_path or os.path.splitext(args.output_model_path)[0] + ".json"
    refuse_outputs_over_inputs(args, UER_OUTPUTS)
    return convert_hf_to_uer(args.input_dir, args.output_model_path, args.output_config_path,
                             args.output_vocab_path, args.output_spm_model_path, args.architecture,
                             args.discard, output_merges_path=args.output_merges_path)


def _uer_to_hf_main(args, parser) -> Converted:
    _need(args, parser, "input_model_path", "config_path", "output_dir", "architecture")
    refuse_outputs_over_inputs(args, [Output("output_dir", inside=HF_DIR_FILES)],
                               {"the task info beside --input_model_path": args.input_model_path + ".task.json"})
    return convert_uer_to_hf(args.input_model_path, args.config_path, args.output_dir, args.architecture,
                             args.vocab_path, args.spm_model_path, args.do_lower_case, args.discard,
                             args.merges_path)


def _uer_py_to_uer_main(args, parser) -> Converted:
    _need(args, parser, "input_model_path", "input_config_path", "output_model_path")
    args.output_config_path = args.output_config_path or os.path.splitext(args.output_model_path)[0] + ".json"
    refuse_outputs_over_inputs(args, UER_OUTPUTS)
    return convert_uer_py_to_uer(args.input_model_path, args.input_config_path, args.output_model_path,
                                 args.output_config_path, args.kind, args.pooling)


def _uer_to_uer_py_main(args, parser) -> Converted:
    _need(args, parser, "input_model_path", "config_path", "output_model_path")
    args.output_config_path = args.output_config_path or os.path.splitext(args.output_model_path)[0] + ".json"
    refuse_outputs_over_inputs(args, UER_OUTPUTS)
    return convert_uer_to_uer_py(args.input_model_path, args.config_path, args.output_model_path,
                                 args.output_config_path, args.vocab_path)


# (--from, --to) -> the conversion; every other pair is refused, listing these.
DIRECTIONS = {("hf", "uer"): _hf_to_uer_main, ("uer", "hf"): _uer_to_hf_main,
              ("uer_py", "uer"): _uer_py_to_uer_main, ("uer", "uer_py"): _uer_to_uer_py_main}


@cli_entry
def main(argv: Optional[List[str]] = None) -> Converted:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = DIRECTIONS.get((args.source, args.dest))
    if run is None:
        pairs = ", ".join(f"--from {s} --to {d}" for s, d in DIRECTIONS)
        parser.error(f"--from {args.source} --to {args.dest} is not a conversion; supported: {pairs} "
                     "(UER-py <-> Hugging Face: go through uer)")
    return run(args, parser)


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
    args.output_config_path = args.output_config_path or os.path.splitext(args.output_model_path)[0] + ".json"
    refuse_outputs_over_inputs(args, UER_OUTPUTS, {"the directory of --input_model_path": input_dir})
    from uer.convert.hf_files import read_config
    hf = read_config(input_dir)
    if args.layers_num is not None and args.layers_num != hf.get("num_hidden_layers"):
        raise ConfigError(f"--layers_num {args.layers_num} but {input_dir}/config.json says "
                          f"num_hidden_layers {hf.get('num_hidden_layers')}; drop --layers_num")
    architecture = "BertForPreTraining" if args.target == "bert" else "BertForMaskedLM"
    return convert_hf_to_uer(input_dir, args.output_model_path, args.output_config_path,
                             architecture=architecture, discard=args.discard, weights_path=weights)
