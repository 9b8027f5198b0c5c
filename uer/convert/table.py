"""Parameter tables: data that maps uer parameter names to Hugging Face ones, used both ways.

A table is a list of entries.  An ``Entry`` names one or more uer parameters, one or more Hugging Face
parameters and the transform between them (``uer/convert/transforms.py``); ``{i}`` in a name stands
for the layer number.  A ``Tied`` entry names a Hugging Face tensor that is a copy of another one
(``cls.predictions.decoder.weight`` is the word embedding): a file may store it or not, and when it
does it must equal its source.  Every tensor of the source is either mapped, tied, or one of the
architecture's known buffers; anything else is an error that lists the names.

The "hf" side of an entry is the other toolkit's names: the same tables serve UER-py / TencentPretrain
checkpoints (``uer/convert/uer_py.py``), whose files store tied copies under both names
(``Tied(..., written=True)``: written back on export, as the same tensor).
"""

import re
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import torch

from uer.convert.transforms import IDENTITY, Sizes, Transform
from uer.errors import CheckpointError


@dataclass(frozen=True)
class Entry:
    uer: Tuple[str, ...]
    hf: Tuple[str, ...]
    transform: Transform = IDENTITY
    optional: bool = False      # may be absent on both sides (then it is absent on both sides)


@dataclass(frozen=True)
class Tied:
    hf: str                     # stored or not by Hugging Face ...
    same_as: str                # ... but always a copy of this tensor
    written: bool = False       # export writes it (as ``same_as`` itself): UER-py's files hold both names


Row = Union[Entry, Tied]


def param(uer: str, hf: str, transform: Transform = IDENTITY, optional: bool = False) -> Entry:
    return Entry((uer,), (hf,), transform, optional)


def linear(uer: str, hf: str, optional: bool = False) -> Entry:
    """A Linear or LayerNorm: ``.weight`` and ``.bias`` copied as they are, together."""
    return Entry((uer + ".weight", uer + ".bias"), (hf + ".weight", hf + ".bias"), IDENTITY, optional)


def prefixed(rows: Iterable[Row], prefix: str) -> List[Row]:
    """The Hugging Face names of ``rows`` under ``prefix`` (the base model's attribute, "bert.")."""
    out = []
    for row in rows:
        if isinstance(row, Tied):
            out.append(Tied(prefix + row.hf, prefix + row.same_as, row.written))
        else:
            out.append(replace(row, hf=tuple(prefix + n for n in row.hf)))
    return out


def per_layer(rows: Iterable[Row], layers: int) -> List[Row]:
    """Repeat the rows whose names contain ``{i}`` once per layer."""
    out = []
    for row in rows:
        names = (row.hf, row.same_as) if isinstance(row, Tied) else row.uer + row.hf
        if not any("{i}" in n for n in names):
            out.append(row)
            continue
        for i in range(layers):
            if isinstance(row, Tied):
                out.append(Tied(row.hf.format(i=i), row.same_as.format(i=i), row.written))
            else:
                out.append(replace(row, uer=tuple(n.format(i=i) for n in row.uer),
                                   hf=tuple(n.format(i=i) for n in row.hf)))
    return out


def _names(names: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... (+{len(names) - limit} more)" if len(names) > limit else "")


def split_ignored(state: Dict[str, torch.Tensor], patterns: Sequence[str]) -> Tuple[Dict, List[str]]:
    """Remove the known non-parameter buffers (``position_ids`` ...) matching ``patterns``."""
    kept, ignored = {}, []
    for name, tensor in state.items():
        if any(re.search(p, name) for p in patterns):
            ignored.append(name)
        else:
            kept[name] = tensor
    return kept, ignored


# What the error says when a tied copy differs from its source, per source toolkit.
TIED_HINTS = {
    "Hugging Face": "(tied weights, tie_word_embeddings=true in config.json) but differs from it; if the "
                    "model really unties them set \"tie_word_embeddings\": false in config.json",
    "UER-py": "(tied weights, \"tie_weights\": true in the UER-py config) but differs from it; if the "
              "model really unties them set \"tie_weights\": false in that config",
}


def _apply(rows: List[Row], state: Dict[str, torch.Tensor], sizes: Sizes, notes: List[str],
           to_uer: bool, source: str, target: str) -> Dict[str, torch.Tensor]:
    remaining = dict(state)
    out: Dict[str, torch.Tensor] = {}
    missing: List[str] = []
    tied: List[Tied] = []
    for row in rows:
        if isinstance(row, Tied):
            tied.append(row)
            continue
        src, dst = (row.hf, row.uer) if to_uer else (row.uer, row.hf)
        present = [n in remaining for n in src]
        if row.optional and not any(present):
            continue
        if not all(present):
            missing += [n for n, p in zip(src, present) if not p]
            for n, p in zip(src, present):     # its partner is not a leftover: the entry is incomplete
                if p:
                    remaining.pop(n)
            continue
        tensors = [remaining.pop(n) for n in src]
        fn = row.transform.to_uer if to_uer else row.transform.to_hf
        results = fn(tensors, sizes, notes)
        for name, tensor in zip(dst, results):
            if name in out:
                raise RuntimeError(f"parameter table error: {name} is written twice")
            out[name] = tensor
    if to_uer:
        for row in tied:
            if row.hf not in remaining:
                continue
            copy = remaining.pop(row.hf)
            original = state.get(row.same_as)
            if original is None or copy.shape != original.shape or not torch.equal(copy, original):
                raise CheckpointError(f"{row.hf} should be a copy of {row.same_as} {TIED_HINTS[source]}")
    else:
        for row in tied:
            if row.written and row.same_as in out:
                out[row.hf] = out[row.same_as]     # one tensor under both names, as torch.save shares it
    if missing or remaining:
        parts = []
        if missing:
            parts.append(f"missing from the {source} weights: {_names(missing)}")
        if remaining:
            parts.append(f"{source} parameters with no place in the {target} model: "
                         f"{_names(sorted(remaining))}")
        raise CheckpointError("; ".join(parts))
    return out


def hf_to_uer(rows: List[Row], state: Dict[str, torch.Tensor], sizes: Sizes,
              notes: List[str]) -> Dict[str, torch.Tensor]:
    return _apply(rows, state, sizes, notes, True, "Hugging Face", "uer")


def uer_to_hf(rows: List[Row], state: Dict[str, torch.Tensor], sizes: Sizes,
              notes: List[str]) -> Dict[str, torch.Tensor]:
    return _apply(rows, state, sizes, notes, False, "uer", "Hugging Face")


def uer_py_to_uer(rows: List[Row], state: Dict[str, torch.Tensor], sizes: Sizes,
                  notes: List[str]) -> Dict[str, torch.Tensor]:
    return _apply(rows, state, sizes, notes, True, "UER-py", "uer")


def uer_to_uer_py(rows: List[Row], state: Dict[str, torch.Tensor], sizes: Sizes,
                  notes: List[str]) -> Dict[str, torch.Tensor]:
    return _apply(rows, state, sizes, notes, False, "uer", "UER-py")
