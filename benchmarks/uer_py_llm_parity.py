"""TencentPretrain's own model code vs our import of its checkpoints: LLaMA (MHA and GQA), BLOOM, BART,
PEGASUS, Transformer.  A dev check, not a test (it needs TencentPretrain's sources):

    python benchmarks/uer_py_llm_parity.py [TencentPretrain git dir or checkout]

The ``tencentpretrain`` package is copied out of the bare mirror (``git archive``, no network, their code
unedited) into a temporary directory and imported from there.  Each case builds a tiny random model with
their ``build_model`` from one of their published configs shrunk (every parameter re-drawn, so no
mapping hides behind a unit norm or a zero bias), converts its ``state_dict()`` with ``--from uer_py``
(uer.convert.uer_py.uer_py_to_uer), and prints the largest |difference| of the final hidden states and
logits on a full batch (no padding: their causal masks ignore ``seg``), then checks that the export gives
back their state dict exactly.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import torch

DEFAULT_MIRROR = "/work/.mirror/Tencent+TencentPretrain/repo"
V = 99
SHRINK = {"emb_size": 32, "hidden_size": 32, "feedforward_size": 48, "heads_num": 4, "layers_num": 2,
          "max_seq_length": 64, "dropout": 0.0}


def extract(source: str, into: str) -> None:
    """Their package + the special-tokens file its constants module reads at import time."""
    git = ["git", f"--git-dir={source}"] if not os.path.isdir(os.path.join(source, "tencentpretrain")) else None
    if git is None:
        subprocess.run(["cp", "-r", os.path.join(source, "tencentpretrain"), into], check=True)
        special = open(os.path.join(source, "models", "special_tokens_map.json"), "rb").read()
    else:
        archive = subprocess.run(git + ["archive", "HEAD", "tencentpretrain"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "x", "-C", into], input=archive, check=True)
        special = subprocess.run(git + ["show", "HEAD:models/special_tokens_map.json"], check=True,
                                 capture_output=True).stdout
    os.makedirs(os.path.join(into, "models"), exist_ok=True)
    with open(os.path.join(into, "models", "special_tokens_map.json"), "wb") as f:
        f.write(special)


def their_args(config: dict, tgt_vocab: int = V):
    from tencentpretrain.opts import model_opts
    parser = argparse.ArgumentParser()
    model_opts(parser)
    args = parser.parse_args([])
    vars(args).update(config)
    vocab = {"[PAD]": 0, **{f"t{i}": i for i in range(1, V)}}
    args.tokenizer = SimpleNamespace(vocab=vocab)
    args.tgt_tokenizer = SimpleNamespace(vocab={"[PAD]": 0, **{f"t{i}": i for i in range(1, tgt_vocab)}})
    for key, default in (("prefix_lm_loss", False), ("tgt_embedding", ["word"]), ("share_embedding", False),
                         ("decoder", None)):
        if not hasattr(args, key):
            setattr(args, key, default)
    return args


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.15 + (1.0 if p.dim() == 1 and "layer_norm" in name
                                                               and not name.endswith("beta") else 0.0))
    return model.eval()


def run_case(name: str, config: dict, control: bool = False) -> dict:
    """``control``: import LLaMA q/k rows without the per-head rotary re-ordering (must disagree)."""
    from tencentpretrain.model_builder import build_model as their_build
    from uer.convert import uer_py_llm
    from uer.convert.uer_py import uer_py_to_uer, uer_to_uer_py
    from uer.models import build_model
    from uer.models.weights import load_weights
    tgt_vocab = config.pop("_tgt_vocab", V)
    args = their_args(config, tgt_vocab)
    theirs = randomize(their_build(args))
    state = theirs.state_dict()
    notes = []
    reorder = uer_py_llm.RotaryPairs.to_uer
    if control:
        uer_py_llm.RotaryPairs.to_uer = lambda self, tensors, sizes, notes: list(tensors)
    try:
        conv = uer_py_to_uer(state, config, f"{name} config")
    finally:
        uer_py_llm.RotaryPairs.to_uer = reorder
    notes += conv.notes
    ours = build_model(conv.config).eval()
    load_weights(ours, conv.state)
    g = torch.Generator().manual_seed(1)
    src = torch.randint(1, V, (2, 12), generator=g)
    seg = torch.ones_like(src)
    with torch.no_grad():
        if config.get("decoder"):
            tgt = torch.randint(1, tgt_vocab, (2, 7), generator=g)
            tgt_seg = torch.ones_like(tgt)
            memory = theirs.encoder(theirs.embedding(src, seg), seg)
            hidden_t = theirs.decoder(memory, theirs.tgt_embedding(tgt, tgt_seg), (seg, tgt_seg))
            memory_o = ours.encode(src, seg)
            hidden_o = ours.decode(tgt, memory_o, seg)
            logits_o = ours.logits(tgt, memory_o, seg)[..., :tgt_vocab]
        else:
            hidden_t = theirs.encoder(theirs.embedding(src, seg), seg)
            hidden_o = ours.encode(src, seg)
            logits_o = ours.target.lm.logits(hidden_o)[..., :V]
        logits_t = theirs.target.lm.output_layer(hidden_t)
    back = uer_to_uer_py(ours.state_dict(), conv.config)
    exact = not control and sorted(back.state) == sorted(state) and all(torch.equal(back.state[k], state[k]) for k in state)
    return {"case": name, "hidden": float((hidden_o - hidden_t).abs().max()),
            "logits": float((logits_o - logits_t).abs().max()), "export == their state dict": exact,
            "tensors": len(state), "notes": notes}


def cases(mirror_show):
    llama = {**json.loads(mirror_show("models/llama2/7b_config.json")), **SHRINK}
    bloom = {**json.loads(mirror_show("models/bloom/1b1_config.json")), **SHRINK}
    seq2seq = {**SHRINK, "decoder_layers_num": 3}
    return {
        "llama2 (MHA)": llama,
        "llama2 (GQA, 2 kv heads)": {**llama, "local_kv_heads_num": 2},
        "control: llama2 (GQA) without the q/k re-ordering": {**llama, "local_kv_heads_num": 2},
        "bloom (their code: no ALiBi)": bloom,
        "bart": {**json.loads(mirror_show("models/bart/base_config.json")), **seq2seq},
        "pegasus": {**json.loads(mirror_show("models/pegasus/base_config.json")), **seq2seq},
        "transformer": {**json.loads(mirror_show("models/transformer/base_config.json")), **seq2seq},
        "transformer (own target vocabulary, 77 tokens)": {
            **json.loads(mirror_show("models/transformer/base_config.json")), **seq2seq, "_tgt_vocab": 77},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", nargs="?", default=DEFAULT_MIRROR, help="TencentPretrain bare git dir or checkout")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    here = os.getcwd()
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        extract(a.source, tmp)

        def show(path):
            if os.path.isdir(os.path.join(a.source, "tencentpretrain")):
                return open(os.path.join(a.source, path), encoding="utf-8").read()
            return subprocess.run(["git", f"--git-dir={a.source}", "show", f"HEAD:{path}"], check=True,
                                  capture_output=True, text=True).stdout
        todo = cases(show)
        sys.path[:0] = [tmp, repo_root]
        os.chdir(tmp)                        # their constants module opens models/special_tokens_map.json
        try:
            import tencentpretrain.utils.constants  # noqa: F401
        finally:
            os.chdir(here)
        print("| case | tensors | max abs diff hidden | max abs diff logits | export == their state dict |")
        print("|---|---|---|---|---|")
        for name, config in todo.items():
            r = run_case(name, config, control=name.startswith("control"))
            print(f"| {r['case']} | {r['tensors']} | {r['hidden']:.2e} | {r['logits']:.2e} | "
                  f"{r['export == their state dict']} |")
            for note in r["notes"]:
                print(f"|   note: {note[:110]} | | | | |")


if __name__ == "__main__":
    main()
