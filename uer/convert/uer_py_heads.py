"""UER-py fine-tuned checkpoints (their finetune/run_*.py task models) <-> uer task models.

UER-py's fine-tuning scripts save ``embedding.* + encoder.*`` (the pretraining names, read by the
table of ``uer/convert/uer_py.py``) plus the script's own head, with no pretraining target:

    kind         UER-py script                     their head                          our head (task)
    classifier   run_classifier.py (regression,    output_layer_1 (H->H), tanh,        classifier: head.linear_1,
                 multi_label, dbqa: the same)      output_layer_2 (H->labels)          head.linear_2
    tagger       run_ner.py                        output_layer (H->labels)            tagger: head.output
                 run_ner.py --crf_target           + crf.transitions / start_ / end_   crf_tagger: + head.crf.*
    mrc          run_cmrc.py                       output_layer (H->2: start, end)     span: head.qa_outputs
    choice       run_c3.py / run_chid.py           output_layer (H->1) on [CLS]        choice_scorer: head.output

The head math is the same on both sides: the classifier pools, applies output_layer_1, tanh,
output_layer_2 (ours: linear_1, tanh, linear_2); torchcrf's ``transitions[i, j]`` (tag i -> tag j),
``start_transitions`` and ``end_transitions`` are our CRF's parameters with the same meaning.  What
differs is stated where it is converted (``NOTES``): UER-py's mean / max / last pooling multiply the
states by the segment id, so a sentence pair's second segment counts twice (ours pools every real
token alike: equal for single sentences and for first pooling; benchmarks/uer_py_heads_parity.py
measures both), and its CRF decodes over every token ([CLS] and word pieces included; ours over words).
"""

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

import torch

from uer.config import ModelConfig
from uer.errors import CheckpointError, ConfigError

# kind -> (our task, our head, [(our name, UER-py name)], the UER-py rows' meaning)
KINDS: Dict[str, Tuple[str, str, List[Tuple[str, str]]]] = {
    "classifier": ("classification", "classifier", [("head.linear_1", "output_layer_1"),
                                                      ("head.linear_2", "output_layer_2")]),
    "regression": ("regression", "classifier", [("head.linear_1", "output_layer_1"),
                                                ("head.linear_2", "output_layer_2")]),
    "multi_label": ("multi_label", "classifier", [("head.linear_1", "output_layer_1"),
                                                  ("head.linear_2", "output_layer_2")]),
    "dbqa": ("dbqa", "classifier", [("head.linear_1", "output_layer_1"),
                                    ("head.linear_2", "output_layer_2")]),
    "tagger": ("ner", "tagger", [("head.output", "output_layer")]),
    "mrc": ("mrc", "span", [("head.qa_outputs", "output_layer")]),
    "c3": ("c3", "choice_scorer", [("head.output", "output_layer")]),
    "chid": ("chid", "choice_scorer", [("head.output", "output_layer")]),
}
CLASSIFIER_KINDS = ("classifier", "regression", "multi_label", "dbqa")
CRF = ("transitions", "start_transitions", "end_transitions")
HEAD_PREFIXES = ("output_layer", "crf.")

NOTES = {
    "classifier": "UER-py's mean / max / last pooling multiply the states by the segment id, so a sentence "
                  "pair's second segment counts twice; ours pools every real token alike: the same logits for "
                  "single sentences (and for first pooling), not for sentence pairs",
    "crf": "UER-py's CRF decodes over every real token ([CLS], [SEP] and word pieces included); ours over the "
           "words (first pieces): the same parameters, decoded paths may differ where a word has several pieces",
}


def is_uer_py_task_state(state: Dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(HEAD_PREFIXES) for k in state)


def detect_kind(state: Dict[str, torch.Tensor], source: str) -> str:
    """The head a UER-py task checkpoint holds, from its keys and shapes; ambiguous shapes ask for --kind."""
    if "output_layer_1.weight" in state and "output_layer_2.weight" in state:
        # run_regression.py's head is run_classifier.py's with one output; multi-label and dbqa models
        # cannot be told from a classifier by their tensors (the caller says --kind)
        return "regression" if int(state["output_layer_2.weight"].shape[0]) == 1 else "classifier"
    if "output_layer.weight" not in state:
        raise CheckpointError(f"{source} holds no UER-py task head (output_layer_1/_2 or output_layer); "
                              "a pretraining checkpoint converts without --kind")
    if any(f"crf.{n}" in state for n in CRF):
        return "tagger"
    rows = int(state["output_layer.weight"].shape[0])
    if rows == 1:
        raise ConfigError(f"{source}: output_layer has 1 output, UER-py's multiple-choice head (run_c3.py and "
                          "run_chid.py save the same layer): pass --kind c3 or --kind chid")
    if rows == 2:
        raise ConfigError(f"{source}: output_layer has 2 outputs: run_cmrc.py's start/end head or a 2-tag "
                          "run_ner.py tagger: pass --kind mrc or --kind tagger")
    return "tagger"


def _head_pairs(kind: str, state_keys, theirs_side: bool) -> List[Tuple[str, str]]:
    """(our name, UER-py name) of every head tensor, CRF included when the file holds one."""
    _, _, layers = KINDS[kind]
    pairs = [(f"{o}.{p}", f"{t}.{p}") for o, t in layers for p in ("weight", "bias")]
    if kind == "tagger":
        crf = [(f"head.crf.{n}", f"crf.{n}") for n in CRF]
        present = [p for p in crf if (p[1] if theirs_side else p[0]) in state_keys]
        if present and len(present) != len(crf):
            raise CheckpointError(f"the CRF is incomplete: it has {', '.join(p[1 if theirs_side else 0] for p in present)} "
                                  f"but needs {', '.join(p[1 if theirs_side else 0] for p in crf)}")
        pairs += present
    return pairs


def uer_py_task_to_uer(state: Dict[str, torch.Tensor], uer_py_config: dict, config_source: str,
                       weights_source: str, kind: Optional[str] = None, pooling: Optional[str] = None):
    """A UER-py fine-tuned state dict + its config -> (Converted of the whole task model, task info for
    ``<out>.task.json``).  ``kind`` None: recognised from the keys (logged by the caller)."""
    from uer.convert import table
    from uer.convert.api import Converted
    from uer.convert.uer_py import FAMILY, _variant, rows, sizes, uer_py_config_to_uer, TGT_WORD, WORD
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"--kind {kind!r}: UER-py task heads are {', '.join(KINDS)}")
    kind = kind or detect_kind(state, weights_source)
    task, head, _ = KINDS[kind]
    pairs = _head_pairs(kind, state, True)
    missing = [t for _, t in pairs if t not in state]
    if missing:
        raise CheckpointError(f"{weights_source} is not a UER-py '{kind}' model: it lacks {', '.join(missing)}")
    head_keys = {t for _, t in pairs}
    stray = sorted(k for k in state if k.startswith(HEAD_PREFIXES) and k not in head_keys)
    if stray:
        raise CheckpointError(f"{weights_source}: {', '.join(stray)} belong to no UER-py '{kind}' head; pass the "
                              "--kind of the script that wrote it")
    if WORD not in state:
        raise CheckpointError(f"{weights_source} has no {WORD}: not a UER-py model with a word embedding")
    notes: List[str] = []
    data = dict(uer_py_config)
    if pooling is not None:
        data["pooling"] = pooling          # their --pooling flag overrides the config, as in UER-py
    tgt_rows = int(state[TGT_WORD].shape[0]) if TGT_WORD in state else 0
    config = uer_py_config_to_uer(data, int(state[WORD].shape[0]), config_source, notes, tgt_rows)
    backbone = {k: v for k, v in state.items() if k not in head_keys}
    try:   # fine-tuned files hold no pretraining target: the backbone rows only
        ours = table.uer_py_to_uer(rows(replace(config, target=[], decoder="")), backbone, sizes(config), notes)
    except CheckpointError as e:
        raise CheckpointError(f"{weights_source} with {config_source}: {e}. Pass the UER-py config the model "
                              "was fine-tuned with (--input_config_path)") from None
    for o, t in pairs:
        ours[o] = state[t].clone()
    out_rows = int(state[pairs[0][1] if kind not in CLASSIFIER_KINDS
                         else "output_layer_2.weight"].shape[0])
    if kind in CLASSIFIER_KINDS + ("tagger",):
        config.labels_num = out_rows
    elif kind in ("c3", "chid"):
        config.labels_num = int(data.get("max_choices_num", {"c3": 4, "chid": 10}[kind]))
    if kind in CLASSIFIER_KINDS and config.pooling in ("mean", "max", "last"):
        notes.append(NOTES["classifier"])
    if any(o.startswith("head.crf.") for o, _ in pairs):
        head = "crf_tagger"
        notes.append(NOTES["crf"])
    info = {"task": task, "head": head, "head_options": {}, "labels_num": config.labels_num,
            "pooling": config.pooling, "converted_from": "UER-py " + kind}
    if kind == "tagger":
        info["label2id"] = None
        notes.append("UER-py keeps tag names in its label2id.json, not in the model: pass it to "
                     "inference/run_ner_infer.py as --label2id_path")
    if kind in ("c3", "chid"):
        info["max_choices_num"] = config.labels_num
    return Converted(ours, config, FAMILY, _variant(kind, ()), dict(uer_py_config), notes), info


def uer_task_to_uer_py(state: Dict[str, torch.Tensor], config: ModelConfig, info: dict,
                       source: str = "the uer config"):
    """Our fine-tuned task model (+ its .task.json ``info``) -> UER-py's task script's state dict and config."""
    from uer.convert import table
    from uer.convert.api import Converted
    from uer.convert.uer_py import FAMILY, _variant, rows, sizes, uer_config_to_uer_py
    head, task = info.get("head"), info.get("task")
    kinds = [k for k, (t, h, _) in KINDS.items() if t == task and h in (head, "tagger" if head == "crf_tagger" else h)]
    if not kinds:
        known = ", ".join(f"{t} ({h})" for t, h, _ in KINDS.values())
        raise ConfigError(f"the model's .task.json says task {task!r} head {head!r}: UER-py has no script with that "
                          f"head to export to (exported: {known})")
    kind = kinds[0]
    if config.vocab_size <= 0:
        raise ConfigError(f"{source} has no vocab_size; pass the vocabulary (--vocab_path) the model was trained with")
    uer_py_config = uer_config_to_uer_py(config, source)
    uer_py_config["pooling"] = config.pooling
    pairs = _head_pairs(kind, state, False)
    if head == "crf_tagger" and not any(o.startswith("head.crf.") for o, _ in pairs):
        raise CheckpointError(f"the model's head is crf_tagger but its weights hold no head.crf.* ({source})")
    missing = [o for o, _ in pairs if o not in state]
    if missing:
        raise CheckpointError(f"the checkpoint lacks {', '.join(missing)} of its '{head}' head")
    head_keys = {o for o, _ in pairs}
    stray = sorted(k for k in state if k.startswith("head.") and k not in head_keys)
    if stray:
        raise CheckpointError(f"{', '.join(stray)}: not part of UER-py's '{kind}' head; they would be lost")
    notes: List[str] = []
    backbone = {k: v for k, v in state.items() if k not in head_keys}
    theirs = table.uer_to_uer_py(rows(replace(config, target=[], decoder="")), backbone, sizes(config), notes)
    for o, t in pairs:
        theirs[t] = state[o].clone()
    return Converted(theirs, config, FAMILY, _variant(kind, ()), uer_py_config, notes)
