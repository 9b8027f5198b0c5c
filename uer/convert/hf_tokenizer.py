"""A Hugging Face ``tokenizer.json`` byte-level BPE (SmolLM, LLaMA-3, Qwen2 ...) <-> our ``bpe`` files.

Import: the model's vocabulary plus its added tokens (at their ids) become ``vocab.json``; the merges
become ``merges.txt``, whose first line carries what else decides the ids (normalizer, pre-tokenizer,
``ignore_merges``, the added tokens, the start / end / padding tokens) and what export needs to write
the same ``tokenizer.json`` again (post-processor, decoder, the merges' notation, the chat template).
Anything uer's bpe would tokenize differently is refused here, naming the part, before a file is written.

Export: the same ``tokenizer.json`` (the vocabulary and merges of our files, the rest from that line) and
a ``tokenizer_config.json`` naming ``PreTrainedTokenizerFast`` with its special tokens.
"""

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from uer.data.bpe import GPT2_SPECIALS, read_merges_and_rules, rules_line
from uer.data.bpe_rules import GPT2_RULES, BpeRules
from uer.data.vocab import ROBERTA_SPECIALS
from uer.errors import DataError
from uer.utils import atomic_write_text, read_json_object

SPECIAL_NAMES = ("bos", "eos", "pad", "unk")
BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


@dataclass
class BpeFiles:
    vocab: Dict[str, int]            # every token, added ones included, in id order
    merges: List[Tuple[str, str]]
    rules: Dict[str, Any]


def _token_name(value: Any) -> Optional[str]:
    """tokenizer_config.json writes a token as a string or as {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_tokens(directory: str, id_to_token: Dict[int, str]) -> Dict[str, str]:
    """bos / eos / pad / unk from tokenizer_config.json, else from config.json's token ids."""
    found: Dict[str, str] = {}
    path = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(path):
        data = read_json_object(path, path, DataError)
        for name in SPECIAL_NAMES:
            token = _token_name(data.get(name + "_token"))
            if token is not None:
                found[name] = token
    path = os.path.join(directory, "config.json")
    if os.path.isfile(path):
        data = read_json_object(path, path, DataError)
        for name in SPECIAL_NAMES:
            value = data.get(name + "_token_id")
            value = value[0] if isinstance(value, list) and value else value
            if name not in found and isinstance(value, int) and value in id_to_token:
                found[name] = id_to_token[value]
    return found


def _chat_template(directory: str) -> Optional[str]:
    path = os.path.join(directory, "tokenizer_config.json")
    if not os.path.isfile(path):
        return None
    template = read_json_object(path, path, DataError).get("chat_template")
    return template if isinstance(template, str) else None


def read_tokenizer_json(directory: str) -> BpeFiles:
    """The directory's tokenizer.json as our bpe files (checked, nothing written)."""
    path = os.path.join(directory, "tokenizer.json")
    data = read_json_object(path, path, DataError)
    model = data.get("model") or {}
    spm_hint = (" It is a SentencePiece-style tokenizer: convert its tokenizer.model with --output_spm_model_path"
                if os.path.isfile(os.path.join(directory, "tokenizer.model")) else "")
    if model.get("type") != "BPE":
        raise DataError(f"{path}: model type {model.get('type')!r}, not a byte-level BPE; it cannot become uer's "
                        f"bpe files (--output_vocab_path/--output_merges_path).{spm_hint}")
    if model.get("byte_fallback"):
        raise DataError(f"{path}: a BPE with byte_fallback (LLaMA-1/2 style), not a byte-level BPE; it cannot become "
                        f"uer's bpe files.{spm_hint}")
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(key):
            raise DataError(f"{path}: model.{key} = {model[key]!r}; uer's byte-level BPE has none, so this "
                            "tokenizer cannot be converted")
    vocab = dict(model.get("vocab") or {})
    in_model = set(vocab)
    added = list(data.get("added_tokens") or [])
    for token in added:
        content, i = token.get("content"), token.get("id")
        flags = [k for k in ("lstrip", "rstrip", "single_word") if token.get(k)]
        if flags:
            raise DataError(f"{path}: added token {content!r} sets {', '.join(flags)}; uer's bpe matches added "
                            "tokens exactly as written, so this tokenizer cannot be converted")
        if content in vocab and vocab[content] != i:
            raise DataError(f"{path}: added token {content!r} has id {i} but model.vocab gives it {vocab[content]}")
        vocab[content] = i
    by_id = {i: t for t, i in vocab.items()}
    if len(by_id) != len(vocab) or sorted(by_id) != list(range(len(vocab))):
        raise DataError(f"{path}: the token ids (vocabulary plus added tokens) are not 0..{len(vocab) - 1}, each "
                        "once; uer's vocab.json needs them so")
    merges: List[Tuple[str, str]] = []
    for number, merge in enumerate(model.get("merges") or []):
        pair = merge.split(" ") if isinstance(merge, str) else list(merge)
        if len(pair) != 2 or any(" " in p or "\n" in p or not p for p in pair):
            raise DataError(f"{path}: merge {number} ({merge!r}) is not two space-free symbols; merges.txt "
                            "cannot hold it")
        merges.append((pair[0], pair[1]))
    rules = {
        "normalizer": data.get("normalizer"), "pre_tokenizer": data.get("pre_tokenizer"),
        "ignore_merges": bool(model.get("ignore_merges")), "added_tokens": added,
        "added_in_model_vocab": sorted(t["content"] for t in added if t["content"] in in_model),
        "special": _special_tokens(directory, by_id),
        "post_processor": data.get("post_processor"), "decoder": data.get("decoder"),
        "merges_as_pairs": bool(model.get("merges")) and not isinstance(model["merges"][0], str),
    }
    template = _chat_template(directory)
    if template is not None:
        rules["chat_template"] = template
    BpeRules(rules, path)          # refuses what uer's bpe would cut differently
    if rules["special"].get("eos") not in vocab:
        raise DataError(f"{path}: cannot tell its end-of-text token (no eos_token in tokenizer_config.json, no "
                        "eos_token_id in config.json); keep those files beside tokenizer.json")
    ordered = {by_id[i]: i for i in range(len(by_id))}
    rows = _model_rows(directory)
    if rows > len(ordered):
        # Qwen2's embedding has more rows than its tokenizer has tokens (151,936 vs 151,665); uer sizes the
        # model by the vocabulary, so the spare rows get tokens no text produces, dropped again on export.
        rules["unused_from"] = len(ordered)
        for i in range(len(ordered), rows):
            name = f"<|uer_unused_{i}|>"
            if name in ordered:
                raise DataError(f"{path}: the vocabulary already holds {name}")
            ordered[name] = i
    return BpeFiles(ordered, merges, rules)


def _model_rows(directory: str) -> int:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        return 0
    rows = read_json_object(path, path, DataError).get("vocab_size")
    return rows if isinstance(rows, int) else 0


def write_bpe_files(files: BpeFiles, vocab_path: str, merges_path: str) -> None:
    atomic_write_text(vocab_path, json.dumps(files.vocab, ensure_ascii=False) + "\n")
    lines = [rules_line(files.rules)] + [f"{a} {b}" for a, b in files.merges]
    atomic_write_text(merges_path, "\n".join(lines) + "\n")


def _plain_gpt2_rules(vocab: Dict[str, int]) -> Dict[str, Any]:
    """The rules of a merges.txt without our line (a GPT-2 / RoBERTa vocabulary)."""
    special = ROBERTA_SPECIALS if ROBERTA_SPECIALS.cls in vocab else GPT2_SPECIALS
    names = sorted({s for s in special.strings() if s in vocab}, key=vocab.get)
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in names]
    return {**GPT2_RULES, "ignore_merges": False, "added_tokens": added, "added_in_model_vocab": names,
            "special": {"bos": special.cls, "eos": special.sep, "pad": special.pad, "unk": special.unk},
            "post_processor": None, "decoder": BYTE_LEVEL_DECODER, "merges_as_pairs": False}


def tokenizer_json_from_bpe(vocab_path: str, merges_path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Our bpe files -> (tokenizer.json, the special tokens and chat template for tokenizer_config.json)."""
    from uer.data.text_files import open_text
    with open_text(vocab_path) as f:
        vocab: Dict[str, int] = json.loads(f.read())
    merges, rules = read_merges_and_rules(merges_path)
    rules = rules or _plain_gpt2_rules(vocab)
    kept = set(rules.get("added_in_model_vocab", []))
    outside = {t["content"] for t in rules.get("added_tokens", [])} - kept
    unused_from = rules.get("unused_from", len(vocab))      # the spare rows' tokens are ours, not the tokenizer's
    model_vocab = {t: i for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in outside and i < unused_from}
    pairs = rules.get("merges_as_pairs")
    data = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": rules.get("added_tokens", []),
        "normalizer": rules.get("normalizer"), "pre_tokenizer": rules.get("pre_tokenizer"),
        "post_processor": rules.get("post_processor"), "decoder": rules.get("decoder") or BYTE_LEVEL_DECODER,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": bool(rules.get("ignore_merges")), "vocab": model_vocab,
                  "merges": [[a, b] if pairs else f"{a} {b}" for a, b in merges]},
    }
    config: Dict[str, Any] = {f"{name}_token": token for name, token in (rules.get("special") or {}).items()
                              if token in vocab}
    if rules.get("chat_template"):
        config["chat_template"] = rules["chat_template"]
    return data, config
