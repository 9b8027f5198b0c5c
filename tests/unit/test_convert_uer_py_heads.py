"""UER-py fine-tuned checkpoints (their finetune/run_*.py heads) <-> uer task models
(uer/convert/uer_py_heads.py).  The UER-py checkpoint is the real bert_tiny fixture's embedding + encoder
(``$UER_DATA_DIR/uer_py_checkpoints``, with UER-py's own encoder output ``hidden``) plus a head under the
names and shapes of UER-py's scripts; the expected logits are computed here from ``hidden`` with
UER-py's head math (their pooling, tanh, linear layers), independent of our modules."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from uer.config import load_config
from uer.convert.cli import convert_uer_py_to_uer, convert_uer_to_uer_py
from uer.errors import ConfigError
from uer.models.weights import load_weights
from uer.tasks.heads import build_task_model

ATOL = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("UER_DATA_DIR")
FIXTURE = os.path.join(DATA or "", "uer_py_checkpoints", "bert_tiny")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(FIXTURE, "model.bin")),
                                reason="needs $UER_DATA_DIR/uer_py_checkpoints/bert_tiny (UER-py's own fixture)")
H = 128


def _reference():
    ref = np.load(os.path.join(FIXTURE, "reference.npz"))
    return torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"]), torch.from_numpy(ref["hidden"]), ref


def _uer_py_finetuned(head: dict) -> dict:
    """What UER-py's task script saves: the pretrained embedding + encoder (no target) + its head."""
    state = torch.load(os.path.join(FIXTURE, "model.bin"), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("target.")}
    state.update(head)
    return state


def _random(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.5


def _uer_py_pooling(memory_bank, seg, kind):
    """uer/utils/misc.py pooling, as UER-py writes it (segment ids multiply the states)."""
    seg = seg.unsqueeze(-1).type_as(memory_bank)
    memory_bank = memory_bank * seg
    if kind == "mean":
        return memory_bank.sum(1) / seg.sum(1)
    if kind == "last":
        return memory_bank[torch.arange(memory_bank.shape[0]), (seg != 0).sum(1).squeeze(-1).long() - 1]
    if kind == "max":
        return torch.max(memory_bank + (seg - 1) * sys.maxsize, dim=1)[0]
    return memory_bank[:, 0]


def _import(tmp_path, state, **kw):
    src_path, out = str(tmp_path / "uer_py.bin"), str(tmp_path / "ours.bin")
    torch.save(state, src_path)
    result = convert_uer_py_to_uer(src_path, os.path.join(FIXTURE, "config.json"), out, **kw)
    with open(out + ".task.json", encoding="utf-8") as f:
        info = json.load(f)
    config = load_config(str(tmp_path / "ours.json"))
    model = build_task_model(config, info["head"], info["head_options"])
    load_weights(model, out)
    return result, info, model.eval(), out


def _export_equals(tmp_path, out, original):
    back = str(tmp_path / "back.bin")
    convert_uer_to_uer_py(out, str(tmp_path / "ours.json"), back)
    theirs = torch.load(back, map_location="cpu", weights_only=True)
    assert set(theirs) == set(original)
    for k, v in original.items():
        assert torch.equal(theirs[k], v), k
    return theirs


def _classifier_head(labels=3):
    return {"output_layer_1.weight": _random(H, H, seed=1) / 8, "output_layer_1.bias": _random(H, seed=2),
            "output_layer_2.weight": _random(labels, H, seed=3), "output_layer_2.bias": _random(labels, seed=4)}


@pytest.mark.parametrize("pooling", ["first", "mean", "max", "last"])
def test_classifier_reproduces_uer_py_head_math(tmp_path, pooling):
    src, seg, hidden, _ = _reference()
    head = _classifier_head()
    state = _uer_py_finetuned(head)
    _, info, model, out = _import(tmp_path, state, pooling=pooling)
    assert (info["task"], info["head"], info["labels_num"], info["pooling"]) == ("classification", "classifier", 3, pooling)
    pooled = _uer_py_pooling(hidden, seg, pooling)
    expected = torch.tanh(pooled @ head["output_layer_1.weight"].T + head["output_layer_1.bias"]) \
        @ head["output_layer_2.weight"].T + head["output_layer_2.bias"]
    with torch.no_grad():
        got = model.logits(src, seg)
    assert (got - expected).abs().max() < ATOL
    theirs = _export_equals(tmp_path, out, state)
    assert json.load(open(str(tmp_path / "back.json")))["pooling"] == pooling
    assert not any(k.startswith("target.") for k in theirs)


def test_tagger_and_crf_reproduce_uer_py(tmp_path):
    src, seg, hidden, _ = _reference()
    head = {"output_layer.weight": _random(5, H, seed=5), "output_layer.bias": _random(5, seed=6),
            "crf.transitions": _random(5, 5, seed=7), "crf.start_transitions": _random(5, seed=8),
            "crf.end_transitions": _random(5, seed=9)}
    state = _uer_py_finetuned(head)
    result, info, model, out = _import(tmp_path, state)         # recognised from crf.*
    assert (info["task"], info["head"], info["labels_num"]) == ("ner", "crf_tagger", 5)
    assert any("label2id" in n for n in result.notes)
    with torch.no_grad():
        emissions = model.head.output(model.encode(src, seg))
    assert (emissions - (hidden @ head["output_layer.weight"].T + head["output_layer.bias"])).abs().max() < ATOL
    # torchcrf's layout: transitions[i, j] scores tag j after tag i, as ours
    assert torch.equal(model.head.crf.transitions, head["crf.transitions"])
    assert torch.equal(model.head.crf.start_transitions, head["crf.start_transitions"])
    # torchcrf's decode maximises start[t0] + sum(transitions[t_prev, t]) + sum(emissions) + end[t_last]:
    # brute force over every path of the first 4 tokens, against our Viterbi on the imported parameters
    import itertools
    em = emissions[:, :4]
    t, start, end = head["crf.transitions"], head["crf.start_transitions"], head["crf.end_transitions"]
    for b in range(em.size(0)):
        def score(path):
            total = start[path[0]] + end[path[-1]] + sum(em[b, i, p] for i, p in enumerate(path))
            return total + sum(t[a, c] for a, c in zip(path, path[1:]))
        best = max(itertools.product(range(5), repeat=4), key=lambda path: float(score(path)))
        assert model.head.crf.decode(em[b:b + 1], torch.ones(1, 4, dtype=torch.bool))[0] == list(best)
    _export_equals(tmp_path, out, state)


def test_a_one_output_classifier_is_run_regression(tmp_path):
    src, seg, hidden, _ = _reference()
    head = _classifier_head(labels=1)
    _, info, model, out = _import(tmp_path, _uer_py_finetuned(head))
    assert (info["task"], info["head"], info["labels_num"]) == ("regression", "classifier", 1)
    expected = torch.tanh(hidden[:, 0] @ head["output_layer_1.weight"].T + head["output_layer_1.bias"]) \
        @ head["output_layer_2.weight"].T + head["output_layer_2.bias"]
    with torch.no_grad():
        assert (model.logits(src, seg) - expected).abs().max() < ATOL


def test_mrc_and_choice_heads(tmp_path):
    src, seg, hidden, _ = _reference()
    head = {"output_layer.weight": _random(2, H, seed=10), "output_layer.bias": _random(2, seed=11)}
    state = _uer_py_finetuned(head)
    with pytest.raises(ConfigError, match="--kind mrc or --kind tagger"):
        _import(tmp_path, state)
    _, info, model, out = _import(tmp_path, state, kind="mrc")
    assert (info["task"], info["head"]) == ("mrc", "span")
    with torch.no_grad():
        got = model.logits(src, seg)
    assert (got - (hidden @ head["output_layer.weight"].T + head["output_layer.bias"])).abs().max() < ATOL
    _export_equals(tmp_path, out, state)

    head = {"output_layer.weight": _random(1, H, seed=12), "output_layer.bias": _random(1, seed=13)}
    state = _uer_py_finetuned(head)
    with pytest.raises(ConfigError, match="--kind c3 or --kind chid"):
        _import(tmp_path, state)
    _, info, model, out = _import(tmp_path, state, kind="c3")
    assert (info["task"], info["head"], info["max_choices_num"]) == ("c3", "choice_scorer", 4)
    # run_c3.py: output_layer(output[:, 0, :]).view(-1, choices_num): the three rows as one example's choices
    expected = (hidden[:, 0] @ head["output_layer.weight"].T + head["output_layer.bias"]).view(1, 3)
    with torch.no_grad():
        got = model.head(model.encode(src, seg), {"choice_mask": torch.ones(1, 3, dtype=torch.bool)})
    assert (got - expected).abs().max() < ATOL
    _export_equals(tmp_path, out, state)


def test_a_stray_head_tensor_is_refused(tmp_path):
    state = _uer_py_finetuned({**_classifier_head(), "output_layer.weight": _random(3, H, seed=14)})
    from uer.errors import CheckpointError
    with pytest.raises(CheckpointError, match="output_layer.weight belong to no UER-py 'classifier' head"):
        _import(tmp_path, state)


def test_classifier_end_to_end_convert_then_infer(tmp_path):
    """A UER-py classifier .bin -> scripts/convert.py -> inference/run_classifier_infer.py: the predicted
    labels are the argmax of UER-py's head math on UER-py's own encoder output."""
    src, seg, hidden, ref = _reference()
    head = _classifier_head(labels=4)
    uer_py_path, out = str(tmp_path / "uer_py.bin"), str(tmp_path / "ours.bin")
    torch.save(_uer_py_finetuned(head), uer_py_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    from uer.convert.cli import main as convert_main       # scripts/convert.py's entry, in this process
    convert_main(["--from", "uer_py", "--to", "uer", "--input_model_path", uer_py_path,
                  "--input_config_path", os.path.join(FIXTURE, "config.json"), "--output_model_path", out])
    rows = [1, 2]                  # the untruncated sentences ([CLS] text [SEP] fits in 32)
    test_path = tmp_path / "test.tsv"
    test_path.write_text("text_a\n" + "".join(str(ref["text"][r]) + "\n" for r in rows), encoding="utf-8")
    pred_path = tmp_path / "pred.tsv"
    subprocess.run([sys.executable, os.path.join(ROOT, "inference", "run_classifier_infer.py"),
                    "--load_model_path", out, "--vocab_path", os.path.join(FIXTURE, "vocab.txt"),
                    "--test_path", str(test_path), "--prediction_path", str(pred_path), "--seq_length", "32",
                    "--batch_size", "2"], check=True, env=env, cwd=ROOT)
    logits = torch.tanh(hidden[:, 0] @ head["output_layer_1.weight"].T + head["output_layer_1.bias"]) \
        @ head["output_layer_2.weight"].T + head["output_layer_2.bias"]
    expected = logits[rows].argmax(-1).tolist()
    lines = pred_path.read_text(encoding="utf-8").splitlines()
    assert [int(line.split("\t")[0]) for line in lines[1:]] == expected


def test_export_of_a_task_uer_py_has_no_script_for_is_refused(tmp_path):
    _, info, _, out = _import(tmp_path, _uer_py_finetuned(_classifier_head()))
    with open(out + ".task.json", "w", encoding="utf-8") as f:
        json.dump({**info, "task": "simcse", "head": "simcse"}, f)
    with pytest.raises(ConfigError, match="UER-py has no script with that head"):
        convert_uer_to_uer_py(out, str(tmp_path / "ours.json"), str(tmp_path / "back.bin"))
    assert not os.path.exists(tmp_path / "back.bin")
