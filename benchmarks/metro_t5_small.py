"""Plain T5 span corruption vs METRO-style RTD on the encoder (issue 11 item 5), at equal steps on the
same batches of ``zh/corpora`` (CLUECorpusSmall, Google's zh vocabulary + [extra_id_N] sentinels).

Every variant is the same tiny encoder-decoder (models/t5/base.json shrunk: hidden 64, 2 + 2 layers,
4 x 16 heads, FFN 256); METRO adds the generator (1/2 width: a 1/3 generator of a 64-wide model is
21 wide) and the RTD head.  After pretraining, each model's exported encoder-decoder — what
fine-tuning keeps — is scored as a plain T5 denoiser: the decoder's loss and token accuracy on the span
targets of held-out lines (clean span-corrupted inputs, no generator).  Each step is the real command
(printed before it runs); the table is printed at the end.

    python benchmarks/metro_t5_small.py --work_dir /tmp/metro_bench --steps 150

Variants:
    t5            models/t5/base.json shrunk, target lm
    metro_d50     models/metro/t5_base.json shrunk: gen 1 + 50 x RTD + 1 x decoder LM (the defaults)
    metro_d10     the same with rtd.disc_weight 10
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("UER_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
SHAPE = dict(emb_size=64, hidden_size=64, feedforward_size=256, heads_num=4, attention_head_size=16, layers_num=2,
             decoder_layers_num=2, max_seq_length=128, dropout=0.0)
VARIANTS = {
    "t5": ("t5/base.json", {}),
    "metro_d50": ("metro/t5_base.json", {"generator_size_multiplier": 0.5}),
    "metro_d10": ("metro/t5_base.json", {"generator_size_multiplier": 0.5, "disc_weight": 10.0}),
}


def run(cmd):
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def held_out_scores(model_path: str, config_path: str, vocab_path: str, dataset: str, batches: int) -> dict:
    """The exported encoder-decoder's decoder loss / accuracy on a held-out t5 dataset (clean inputs)."""
    from uer.config import load_config
    from uer.data.collator import PretrainCollator
    from uer.data.dataset import IndexedDataset
    from uer.data.noising import build_noiser
    from uer.data.vocab import Vocab
    from uer.models import Model
    from uer.models.pretrained import backbone_config, backbone_source
    from uer.models.weights import load_weights
    vocab = Vocab.load(vocab_path)
    config = load_config(config_path)
    config.vocab_size = len(vocab)
    model = Model(backbone_config(config))
    load_weights(model, backbone_source(config, model_path))
    model.eval()
    data = IndexedDataset(dataset)
    collator = PretrainCollator(vocab, ["lm"], config.masking, 0, data.fields, data.meta["seq_length"],
                                noiser=build_noiser(data.meta, vocab, 0))
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for b in range(batches):
            idx = list(range(b * 16, (b + 1) * 16))
            batch = collator([data[i] for i in idx], idx, 0)
            batch.pop("tokens")
            out = model(batch)
            n = int(batch["tgt_seg"].sum())
            losses.append(float(out["lm_loss"]) * n)
            correct += float(out["lm_acc"]) * n
            total += n
    return {"heldout_lm_loss": sum(losses) / total, "heldout_lm_acc": correct / total}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", required=True)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--learning_rate", default="5e-3")
    p.add_argument("--train_lines", type=int, default=4000)
    p.add_argument("--heldout_batches", type=int, default=8)
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    w = lambda *names: os.path.join(args.work_dir, *names)   # noqa: E731
    vocab = w("zh_sentinel_vocab.txt")
    google = open(os.path.join(DATA, "vocab", "google_zh_vocab.txt"), encoding="utf-8").read().rstrip("\n")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write(google + "\n" + "".join(f"[extra_id_{i}]\n" for i in range(100)))
    with open(os.path.join(DATA, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), encoding="utf-8") as f:
        lines = f.readlines()
    split = {"train": lines[:args.train_lines], "heldout": lines[-300:]}
    for name, part in split.items():
        with open(w(f"{name}.txt"), "w", encoding="utf-8") as f:
            f.writelines(part)
        if not os.path.isdir(w(f"ds_{name}")):
            run([sys.executable, "preprocess.py", "--corpus_path", w(f"{name}.txt"), "--vocab_path", vocab,
                 "--dataset_path", w(f"ds_{name}"), "--data_processor", "t5", "--seq_length", "64"])
    rows = {}
    for variant, (base, rtd) in VARIANTS.items():
        config = json.load(open(os.path.join(ROOT, "models", base)))
        config.update(SHAPE)
        if rtd:
            config["rtd"] = {**config["rtd"], **rtd}
        with open(w(f"{variant}.json"), "w") as f:
            json.dump(config, f)
        out = w(f"{variant}.bin")
        start = time.time()
        run([sys.executable, "pretrain.py", "--dataset_path", w("ds_train"), "--config_path", w(f"{variant}.json"),
             "--vocab_path", vocab, "--output_model_path", out, "--total_steps", str(args.steps), "--report_steps",
             str(max(args.steps // 10, 1)), "--batch_size", "16", "--warmup", "0.05", "--learning_rate",
             args.learning_rate, "--device", "cpu", "--seed", "7", "--overwrite"])
        seconds = time.time() - start
        records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
        last = records[-1]
        rows[variant] = {"train_lm_loss": last["lm_loss"], "rtd_acc": last.get("rtd_acc"),
                         "seconds": seconds, **held_out_scores(out, out + ".config.json", vocab, w("ds_heldout"),
                                                               args.heldout_batches)}
    with open(w("results.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(f"\n{args.steps} steps x 16 sequences of 64 tokens, lr {args.learning_rate}\n")
    print("| variant | train decoder loss (last report) | RTD acc | held-out decoder loss | held-out token acc "
          "| wall s |")
    print("|---|---|---|---|---|---|")
    for variant, r in rows.items():
        rtd = "—" if r["rtd_acc"] is None else f"{r['rtd_acc']:.3f}"
        print(f"| {variant} | {r['train_lm_loss']:.3f} | {rtd} | {r['heldout_lm_loss']:.3f} | "
              f"{r['heldout_lm_acc']:.3f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
