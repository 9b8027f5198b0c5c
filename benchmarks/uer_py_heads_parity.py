#!/usr/bin/env python
"""UER-py fine-tuned heads through UER-py's own code vs our import (uer/convert/uer_py_heads.py).

For each head (run_classifier.py with every --pooling, run_regression.py, run_ner.py without CRF,
run_cmrc.py, run_c3.py) a UER-py-named checkpoint is made from the bert_tiny fixture's encoder plus a
random head, loaded into UER-py's own task class (from the bare mirror, strict=True, in a child
process so that its ``uer`` package does not meet ours), and run on the fixture's inputs (and, for the
classifier heads, its sentence pair, where UER-py's mean / max / last pooling multiply the states by the
segment id: expected to differ there); our import of the same file runs through our task model.  Prints max
|diff| per head.  No network.

    UER_DATA_DIR=../shared/data python benchmarks/uer_py_heads_parity.py [--mirror /work/.mirror/dbiir+UER-py/repo]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r'''
import argparse, json, sys
import numpy as np, torch
sys.path.insert(0, ".")
from finetune.run_classifier import Classifier
from finetune.run_regression import Regression
from finetune.run_ner import NerTagger
from finetune.run_cmrc import MachineReadingComprehension
from finetune.run_c3 import MultipleChoice
job = json.load(open(sys.argv[1]))
ref = np.load(job["reference"])
src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
out = {}
for name, spec in job["heads"].items():
    args = argparse.Namespace(**job["args"])
    args.tokenizer = argparse.Namespace(vocab=[None] * job["vocab_size"])
    args.labels_num, args.pooling, args.soft_targets, args.soft_alpha = spec["labels_num"], spec["pooling"], False, 0.5
    args.crf_target, args.seq_length = False, src.size(1)
    model = {"classifier": Classifier, "regression": Regression, "tagger": NerTagger,
             "mrc": MachineReadingComprehension, "c3": MultipleChoice}[spec["kind"]](args)
    model.load_state_dict(torch.load(spec["path"], map_location="cpu", weights_only=True), strict=True)
    model.eval()
    with torch.no_grad():
        if spec["kind"] in ("classifier", "regression"):
            logits = model(src, None, seg)[1]
            pair = model(torch.from_numpy(ref["pair_src"]), None, torch.from_numpy(ref["pair_seg"]))[1]
            out[name + " (sentence pair)"] = pair.numpy()
        elif spec["kind"] == "tagger":
            logits = model.output_layer(model.encoder(model.embedding(src, seg), seg))
        elif spec["kind"] == "mrc":
            logits = model.output_layer(model.encoder(model.embedding(src, seg), seg))
        else:   # run_c3.py's forward without its loss: the three rows as one example's choices
            output = model.encoder(model.embedding(src, seg), seg)
            logits = model.output_layer(output[:, 0, :]).view(-1, src.size(0))
    out[name] = logits.numpy()
np.savez(sys.argv[2], **out)
'''


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mirror", default="/work/.mirror/dbiir+UER-py/repo")
    a = p.parse_args()
    from uer.convert.cli import convert_uer_py_to_uer
    from uer.config import load_config
    from uer.models.weights import load_weights
    from uer.tasks.heads import build_task_model
    fixture = os.path.abspath(os.path.join(os.environ.get("UER_DATA_DIR", "../shared/data"), "uer_py_checkpoints",
                                           "bert_tiny"))
    base = torch.load(os.path.join(fixture, "model.bin"), map_location="cpu", weights_only=True)
    base = {k: v for k, v in base.items() if not k.startswith("target.")}
    hidden = base["embedding.word.embedding.weight"].shape[1]
    ref = np.load(os.path.join(fixture, "reference.npz"))
    src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
    g = torch.Generator().manual_seed(0)
    heads = {f"classifier/{p}": ("classifier", 3, p) for p in ("first", "mean", "max", "last")}
    heads.update({"regression": ("regression", 1, "first"), "tagger": ("tagger", 5, "first"),
                  "mrc": ("mrc", 2, "first"), "c3": ("c3", 1, "first")})
    with tempfile.TemporaryDirectory() as tmp:
        code = os.path.join(tmp, "uer_py")
        os.makedirs(os.path.join(code, "models"))
        archive = subprocess.run(["git", "--git-dir", a.mirror, "archive", "HEAD", "uer", "finetune"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "x", "-C", code], input=archive, check=True)
        with open(os.path.join(code, "models", "special_tokens_map.json"), "wb") as f:
            f.write(subprocess.run(["git", "--git-dir", a.mirror, "show", "HEAD:models/special_tokens_map.json"],
                                   check=True, capture_output=True).stdout)
        job = {"reference": os.path.join(fixture, "reference.npz"),
               "vocab_size": base["embedding.word.embedding.weight"].shape[0],
               "args": json.load(open(os.path.join(fixture, "resolved_args.json"))), "heads": {}}
        ours = {}
        for name, (kind, labels, pooling) in heads.items():
            state = dict(base)
            if kind in ("classifier", "regression"):
                state["output_layer_1.weight"] = torch.randn(hidden, hidden, generator=g) / 8
                state["output_layer_1.bias"] = torch.randn(hidden, generator=g)
                state["output_layer_2.weight"] = torch.randn(labels, hidden, generator=g)
                state["output_layer_2.bias"] = torch.randn(labels, generator=g)
            else:
                state["output_layer.weight"] = torch.randn(labels, hidden, generator=g)
                state["output_layer.bias"] = torch.randn(labels, generator=g)
            path = os.path.join(tmp, name.replace("/", "_") + ".bin")
            torch.save(state, path)
            job["heads"][name] = {"kind": kind, "labels_num": labels, "pooling": pooling, "path": path}
            out = path + ".uer.bin"
            convert_uer_py_to_uer(path, os.path.join(fixture, "config.json"), out, kind=kind, pooling=pooling)
            info = json.load(open(out + ".task.json"))
            model = build_task_model(load_config(os.path.splitext(out)[0] + ".json"), info["head"]).eval()
            load_weights(model, out)
            with torch.no_grad():
                if kind == "c3":
                    ours[name] = model.head(model.encode(src, seg), {"choice_mask": torch.ones(1, src.size(0),
                                                                                            dtype=torch.bool)})
                else:
                    ours[name] = model.logits(src, seg)
                if kind in ("classifier", "regression"):
                    ours[name + " (sentence pair)"] = model.logits(torch.from_numpy(ref["pair_src"]),
                                                                   torch.from_numpy(ref["pair_seg"]))
        json.dump(job, open(os.path.join(tmp, "job.json"), "w"))
        subprocess.run([sys.executable, "-c", CHILD, os.path.join(tmp, "job.json"), os.path.join(tmp, "theirs.npz")],
                       check=True, cwd=code)
        theirs = np.load(os.path.join(tmp, "theirs.npz"))
        print("| head (UER-py script, --pooling) | max abs diff, UER-py's code vs our import |")
        print("|---|---|")
        for name in ours:
            print(f"| {name} | {np.abs(theirs[name] - ours[name].numpy()).max():.2e} |")


if __name__ == "__main__":
    main()
