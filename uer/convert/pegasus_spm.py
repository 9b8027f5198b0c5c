"""PEGASUS's SentencePiece tokenizer <-> a uer ``--tokenizer spm`` model with PEGASUS's ids.

transformers' PegasusTokenizer numbers tokens as: ``<pad>`` 0, ``</s>`` 1, ``<mask_1>`` 2, ``<mask_2>`` 3,
``<unk_2>`` .. ``<unk_102>`` 4-104, then SentencePiece piece i (i >= 2) at i + 103 (its ``offset``).  uer's
spm tokenizer gives a model's own ids, so import writes a model that holds those 103 tokens as pieces
2-104: the masks as user-defined pieces (matched whole in a text), the placeholders as control pieces
(never produced by text), the model's pieces after them, its unk id moved with them.  Segmentation is
unchanged (only normal pieces segment text).  Export takes them out again and writes a PegasusTokenizer
config; the model must hold exactly that layout (a PEGASUS import's).
"""

import os
from typing import Any, Dict

from uer.convert.t5_spm import add_spare_rows, drop_spare_rows, read_spm_proto, write_bytes
from uer.errors import ConfigError, DataError
from uer.utils import read_json_object

OFFSET = 103
MASKS = ("<mask_1>", "<mask_2>")          # mask_token_sent (gap sentences), mask_token (MLM)
PLACEHOLDERS = tuple(f"<unk_{i}>" for i in range(2, OFFSET))
HEAD = MASKS + PLACEHOLDERS               # the tokens between </s> and the model's third piece


def _check_ends(path: str, model) -> None:
    spec = model.trainer_spec
    if (spec.pad_id, spec.eos_id) != (0, 1) or [p.piece for p in model.pieces[:2]] != ["<pad>", "</s>"]:
        raise DataError(f"{path}: pieces 0-1 are {[p.piece for p in model.pieces[:2]]} (pad id {spec.pad_id}, eos id "
                        f"{spec.eos_id}); PEGASUS's tokenizer keeps the model's <pad> 0 and </s> 1, so this model "
                        "cannot carry its ids")


def pegasus_spm_with_offset(input_dir: str, spm_path: str) -> bytes:
    """The directory's spiece.model renumbered as PegasusTokenizer numbers it."""
    path = os.path.join(input_dir, "tokenizer_config.json")
    config = read_json_object(path, path, DataError) if os.path.isfile(path) else {}
    if config.get("offset", OFFSET) != OFFSET or config.get("mask_token_sent", MASKS[0]) != MASKS[0] or \
            config.get("mask_token", MASKS[1]) not in (MASKS[1], None):
        raise DataError(f"{path}: offset {config.get('offset')!r} / mask tokens {config.get('mask_token_sent')!r}, "
                        f"{config.get('mask_token')!r}; only PEGASUS's own layout (offset 103, <mask_1>, <mask_2>) "
                        "is carried")
    pb, model = read_spm_proto(spm_path)
    _check_ends(spm_path, model)
    taken = {p.piece for p in model.pieces}.intersection(HEAD)
    if taken:
        raise DataError(f"{spm_path} already holds {sorted(taken)[:3]}, which PEGASUS's tokenizer adds itself")
    pieces = list(model.pieces)
    del model.pieces[2:]
    kinds = pb.ModelProto.SentencePiece
    for token in HEAD:
        piece = model.pieces.add()
        piece.piece, piece.score = token, 0.0
        piece.type = kinds.USER_DEFINED if token in MASKS else kinds.CONTROL
    model.pieces.extend(pieces[2:])
    spec = model.trainer_spec
    for name in ("unk_id", "bos_id"):
        if getattr(spec, name) >= 2:
            setattr(spec, name, getattr(spec, name) + OFFSET)
    add_spare_rows(input_dir, model, pb)
    return model.SerializeToString()


def check_pegasus_spm(spm_path: str):
    """The parsed model, refused unless it holds PEGASUS's 103 tokens at ids 2-104 (before anything is written)."""
    pb, model = read_spm_proto(spm_path)
    _check_ends(spm_path, model)
    if tuple(p.piece for p in model.pieces[2:2 + len(HEAD)]) != HEAD:
        raise ConfigError(f"--spm_model_path {spm_path}: pieces 2-104 are not PEGASUS's <mask_1> <mask_2> <unk_2> .. "
                          "<unk_102>; PegasusTokenizer numbers pieces from 105 on, so only a model imported from a "
                          "PEGASUS directory (--output_spm_model_path) exports with its ids")
    return pb, model


def pegasus_tokenizer_files(spm_path: str, output_dir: str) -> Dict[str, Any]:
    """Write spiece.model (PEGASUS's 103 tokens and the spare rows taken out) into ``output_dir``; the
    tokenizer_config.json entries of a PegasusTokenizer."""
    pb, model = check_pegasus_spm(spm_path)
    drop_spare_rows(model, pb)
    del model.pieces[2:2 + len(HEAD)]
    spec = model.trainer_spec
    for name in ("unk_id", "bos_id"):
        if getattr(spec, name) >= 2 + OFFSET:
            setattr(spec, name, getattr(spec, name) - OFFSET)
    write_bytes(os.path.join(output_dir, "spiece.model"), model.SerializeToString())
    # mask_token / mask_token_sent are left to PegasusTokenizer's defaults (<mask_2>, <mask_1>): written out,
    # transformers 5 puts <mask_2> at id 2 and <mask_1> at 3, the other way round from its own numbering
    return {"tokenizer_class": "PegasusTokenizer", "pad_token": "<pad>", "eos_token": "</s>",
            "unk_token": model.pieces[spec.unk_id].piece, "offset": OFFSET}
