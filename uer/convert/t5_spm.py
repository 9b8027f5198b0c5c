"""T5's SentencePiece tokenizer files <-> a uer ``--tokenizer spm`` model that holds T5's sentinels.

A Hugging Face T5 directory's ``spiece.model`` lacks the 100 sentinels: transformers appends
``<extra_id_99> .. <extra_id_0>`` after the model's N pieces (ids N .. N+99, ``<extra_id_0>`` last).
uer's spm tokenizer numbers tokens by the SentencePiece model alone, so on import we write a model with
those sentinels appended as user-defined pieces at exactly those ids (a user-defined piece is matched
whole in the text and changes nothing else about segmentation); the t5 processor then finds them.

On export the sentinels at the model's tail are taken off again and ``extra_ids`` in
tokenizer_config.json makes transformers add them back at the same ids, as T5 has them.  transformers 5
builds its T5 tokenizer from ``spiece.model`` only through ``from_pretrained(directory)`` (its converter
reads the model); ``T5Tokenizer(vocab_file=...)`` ignores the file (the class takes ``vocab``, a list of
pieces) and gives a 104-token placeholder, which is why a bare file looked unloadable.
"""

import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from uer.errors import ConfigError, DataError
from uer.utils import atomic_path, atomic_write_text, read_json_object

SENTINEL = re.compile(r"<extra_id_(\d+)>\Z")
UNUSED = "<uer_unused_{}>"
UNUSED_RE = re.compile(r"<uer_unused_\d+>\Z")
# T5's own layout; transformers' T5 tokenizer assumes it (unk is id 2 in its Unigram model).
T5_IDS = {"pad": 0, "eos": 1, "unk": 2}


def read_spm_proto(path: str):
    """(the sentencepiece_model_pb2 module, the parsed ModelProto of ``path``)."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError as e:          # the module needs protobuf
        raise DataError(f"reading {path} as a SentencePiece model needs the protobuf package "
                        f"(pip install protobuf): {e}") from None
    model = pb.ModelProto()
    with open(path, "rb") as f:
        try:
            model.ParseFromString(f.read())
        except Exception as e:
            raise DataError(f"{path} is not a SentencePiece model: {type(e).__name__}: {e}") from None
    return pb, model


def _hf_added_tokens(input_dir: str, pieces: int) -> Optional[Dict[int, str]]:
    """The tokens a T5 directory adds after the model's pieces, by id, as its tokenizer files say."""
    path = os.path.join(input_dir, "tokenizer.json")
    if os.path.isfile(path):
        added = read_json_object(path, path, DataError).get("added_tokens") or []
        return {t["id"]: t["content"] for t in added if isinstance(t.get("id"), int) and t["id"] >= pieces}
    path = os.path.join(input_dir, "tokenizer_config.json")
    config = read_json_object(path, path, DataError) if os.path.isfile(path) else {}
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict) and decoder:
        out = {}
        for key, token in decoder.items():
            content = token.get("content") if isinstance(token, dict) else token
            if str(key).isdigit() and int(key) >= pieces and isinstance(content, str):
                out[int(key)] = content
        return out
    return None


def _sentinels_to_add(input_dir: str, spm_path: str, pieces: int) -> List[str]:
    """The sentinels after the model's pieces, in id order (ids pieces, pieces + 1, ...)."""
    added = _hf_added_tokens(input_dir, pieces)
    if added is None:                 # no tokenizer file names them: transformers' default, extra_ids
        path = os.path.join(input_dir, "tokenizer_config.json")
        config = read_json_object(path, path, DataError) if os.path.isfile(path) else {}
        count = config.get("extra_ids", 100)
        if not isinstance(count, int) or count < 0:
            raise DataError(f"{path}: extra_ids {count!r} is not a count of sentinels")
        return [f"<extra_id_{i}>" for i in range(count - 1, -1, -1)]
    ids = sorted(added)
    if ids != list(range(pieces, pieces + len(ids))):
        raise DataError(f"{input_dir}: its added tokens have ids {ids[:3]}...{ids[-1:]}, not {pieces} onwards "
                        f"after {spm_path}'s {pieces} pieces, each once; uer's spm tokenizer cannot give them "
                        "those ids")
    return [added[i] for i in ids]


def t5_spm_with_sentinels(input_dir: str, spm_path: str) -> bytes:
    """The directory's spiece.model with its added tokens (the sentinels) appended at their ids, then one
    unused piece per spare embedding row (T5's 32,128 rows hold 32,100 tokens; uer sizes the model by the
    vocabulary).  The spare pieces are control symbols, which no text produces, and export drops them."""
    pb, model = read_spm_proto(spm_path)
    present = {p.piece for p in model.pieces}
    for token in _sentinels_to_add(input_dir, spm_path, len(model.pieces)):
        if token in present:
            raise DataError(f"{input_dir}: added token {token!r} is already a piece of {spm_path}; the tokenizer "
                            "files disagree with the model")
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = token, 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    add_spare_rows(input_dir, model, pb)
    return model.SerializeToString()


def add_spare_rows(input_dir: str, model, pb) -> None:
    """One control piece per embedding row of config.json's vocab_size beyond the model's pieces."""
    path = os.path.join(input_dir, "config.json")
    rows = read_json_object(path, path, DataError).get("vocab_size") if os.path.isfile(path) else None
    for i in range(len(model.pieces), rows if isinstance(rows, int) else 0):
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = UNUSED.format(i), 0.0, pb.ModelProto.SentencePiece.CONTROL


def drop_spare_rows(model, pb) -> None:
    while model.pieces and model.pieces[-1].type == pb.ModelProto.SentencePiece.CONTROL and \
            UNUSED_RE.match(model.pieces[-1].piece):
        model.pieces.pop()            # the spare rows' pieces: config.json's vocab_size keeps the rows


def _check_t5_layout(spm_path: str, model) -> None:
    spec = model.trainer_spec
    found = {"pad": spec.pad_id, "eos": spec.eos_id, "unk": spec.unk_id}
    if found != T5_IDS or spec.bos_id >= 0:
        raise ConfigError(f"--spm_model_path {spm_path}: pad/eos/unk ids {found['pad']}/{found['eos']}/{found['unk']}"
                          f" (bos {spec.bos_id}); a Hugging Face T5 tokenizer needs T5's layout pad 0, eos 1, unk 2 "
                          "and no bos (train it with --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1)")


def check_t5_spm(spm_path: str) -> None:
    """Refuse, before anything is written, a model transformers' T5 tokenizer would number differently."""
    _check_t5_layout(spm_path, read_spm_proto(spm_path)[1])


def t5_tokenizer_files(spm_path: str, output_dir: str) -> Dict[str, Any]:
    """Write spiece.model (the tail sentinels taken off) into ``output_dir``; the tokenizer_config.json
    entries that make transformers' T5 tokenizer give the model's ids."""
    pb, model = read_spm_proto(spm_path)
    _check_t5_layout(spm_path, model)
    drop_spare_rows(model, pb)
    tail = _tail_sentinels(model, pb)
    for _ in range(tail):
        model.pieces.pop()
    write_bytes(os.path.join(output_dir, "spiece.model"), model.SerializeToString())
    names = {name: model.pieces[i].piece for name, i in T5_IDS.items()}
    special = {f"{name}_token": piece for name, piece in names.items()}
    sentinels = [f"<extra_id_{i}>" for i in range(tail)]
    atomic_write_text(os.path.join(output_dir, "special_tokens_map.json"),
                      json.dumps({**special, "additional_special_tokens": sentinels}, indent=2) + "\n")
    return {"tokenizer_class": "T5Tokenizer", **special, "extra_ids": tail}


def _tail_sentinels(model, pb) -> int:
    """How many user-defined pieces at the model's end are <extra_id_{k-1}> .. <extra_id_0>, as T5 lays them."""
    count = 0
    for piece in reversed(model.pieces):
        match = SENTINEL.match(piece.piece)
        if piece.type != pb.ModelProto.SentencePiece.USER_DEFINED or not match or int(match.group(1)) != count:
            break
        count += 1
    return count


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def spm_refusal(family: str) -> Optional[Tuple[str, str]]:
    """Why a family's SentencePiece files cannot travel as a uer spm model: (import reason, export reason)."""
    return REFUSALS.get(family)


REFUSALS = {
    "marian": (
        "Marian's ids come from its vocab.json (source.spm only segments the text, and its pieces are numbered "
        "differently); uer's spm tokenizer numbers tokens by the SentencePiece model, so no uer tokenizer gives "
        "vocab.json's ids; convert the weights without --output_spm_model_path and tokenize with transformers' "
        "MarianTokenizer",
        "Marian's ids come from a vocab.json beside source.spm / target.spm; a uer spm model's ids cannot be "
        "written that way; drop --spm_model_path"),
}
