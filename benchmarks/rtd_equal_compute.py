"""Equal-compute comparison of pretraining objectives on real Chinese text (issue 4).

Each variant trains a discriminator (or MLM encoder) of exactly the same size for the same number of
steps on the same batches of ``zh/corpora``, so the discriminator-side FLOPs are equal; the
generator's extra FLOPs are reported beside them.  Each pretrained encoder is then fine-tuned on
``zh/book_review`` and scored on its dev and test sets.  Every step is the real command a user would
type (printed before it runs); results go to ``<work_dir>/results.json`` and a Markdown table, and
the curves are drawn with ``scripts/plot_metrics.py``.

    python benchmarks/rtd_equal_compute.py --work_dir /tmp/rtd_bench --steps 300 --learning_rate 1e-3 --seeds 1 2

Runs of one seed are independent: two lanes (``--seeds 1 --results results_1.json`` and
``--seeds 2 --results results_2.json``, each with OMP_NUM_THREADS=1) use two cores at once; a
finished pretraining (``pretrain.json`` beside it) is reused when the driver is re-run.

Variants (all: hidden 128, 4 layers, 2 heads, FFN 512 — sized so that eight runs fit a 2-core
machine; vocabulary 21,128):
    mlm            BERT-style MLM (15%, 80/10/10), tied output embedding
    electra_shared ELECTRA (15% selected, 85% [MASK] / 15% kept): joint generator at 1/2 width (the
                   paper's best range is 1/4-1/2; 1/4 of 128 would be a 32-wide model), shared
                   embeddings, RTD weight 50
    electra_gdes   the same with gradient-disentangled embedding sharing (DeBERTaV3)
    unigram_rtd    RTD against a statistical (unigram-frequency) generator, no generator network
    none           no pretraining (random initialisation), for scale
"""

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("UER_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))

BACKBONE = {
    "embedding": ["word", "pos", "seg"], "emb_size": 128, "hidden_size": 128, "feedforward_size": 512,
    "heads_num": 2, "layers_num": 4, "max_seq_length": 512, "hidden_act": "gelu", "dropout": 0.1,
    "layernorm_eps": 1e-12, "data_processor": "mlm",
}
ELECTRA_MASKING = {"mask_prob": 0.15, "replace_mask": 0.85, "replace_random": 0.0}


def rtd_section(generator: str, sharing: str) -> Dict:
    return {"generator": generator, "corruption": "replace", "generator_size_multiplier": 0.5,
            "embedding_sharing": sharing, "temperature": 1.0, "gen_weight": 1.0, "disc_weight": 50.0}


VARIANTS = {
    "mlm": {**BACKBONE, "target": ["mlm"], "tie_weights": True},
    "electra_shared": {**BACKBONE, "pretrainer": "electra", "target": ["mlm", "rtd"],
                       "masking": ELECTRA_MASKING, "rtd": rtd_section("joint", "shared")},
    "electra_gdes": {**BACKBONE, "pretrainer": "electra", "target": ["mlm", "rtd"],
                     "masking": ELECTRA_MASKING, "rtd": rtd_section("joint", "gdes")},
    "unigram_rtd": {**BACKBONE, "pretrainer": "electra", "target": ["mlm", "rtd"],
                    "masking": ELECTRA_MASKING, "rtd": rtd_section("unigram", "none")},
}


def run(cmd: List[str], log_path: str) -> str:
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"step failed (exit {proc.returncode}); full log in {log_path}")
    tail = [line for line in proc.stdout.splitlines() if "step " in line or "accuracy" in line][-2:]
    print("  " + "\n  ".join(tail) + f"\n  ({time.time() - start:.0f} s)", flush=True)
    return proc.stdout


def sample_rows(src: str, dst: str, rows: int, seed: int) -> str:
    """A fixed random subset of a header TSV (the same subset for every variant)."""
    with open(src, encoding="utf-8") as f:
        header, *lines = f.readlines()
    if rows and rows < len(lines):
        lines = random.Random(seed).sample(lines, rows)
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines([header] + lines)
    return dst


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default="rtd_bench")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS) + ["none"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=5e-4)
    p.add_argument("--train_rows", type=int, default=4000, help="book_review training rows (0: all 20,000)")
    p.add_argument("--dev_rows", type=int, default=2000, help="book_review dev rows (0: all 8,000)")
    p.add_argument("--test_rows", type=int, default=0, help="book_review test rows (0: all 8,000)")
    p.add_argument("--finetune_epochs", type=int, default=3)
    p.add_argument("--finetune_learning_rate", type=float, default=3e-4)
    p.add_argument("--results", default="results.json", help="Results file in work_dir (one per parallel lane)")
    p.add_argument("--plot_dir", default=None, help="Where the curve PNGs go (default: work_dir)")
    p.add_argument("--report_only", action="store_true",
                   help="Run nothing: print the table and draw the curves from every lane's results file")
    args = p.parse_args(argv)
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    py, vocab = sys.executable, os.path.join(DATA, "vocab", "google_zh_vocab.txt")

    corpus = os.path.join(work, "corpus.txt")
    if not os.path.exists(corpus):
        with open(corpus, "w", encoding="utf-8") as out:
            for name in ("CLUECorpusSmall_sampled.txt", "chnsenticorp.txt"):
                with open(os.path.join(DATA, "zh", "corpora", name), encoding="utf-8") as f:
                    out.writelines(line for line in f if line.strip())
    dataset = os.path.join(work, "dataset")
    if not os.path.exists(dataset):
        run([py, "preprocess.py", "--corpus_path", corpus, "--vocab_path", vocab, "--dataset_path", dataset,
             "--data_processor", "mlm", "--full_sentences", "--seq_length", str(args.seq_length),
             "--processes_num", "2"], os.path.join(work, "preprocess.log"))
    book = os.path.join(DATA, "zh", "book_review")
    train = sample_rows(os.path.join(book, "train.tsv"), os.path.join(work, "train.tsv"), args.train_rows, 0)
    dev = sample_rows(os.path.join(book, "dev.tsv"), os.path.join(work, "dev.tsv"), args.dev_rows, 0)
    test = sample_rows(os.path.join(book, "test.tsv"), os.path.join(work, "test.tsv"), args.test_rows, 0)

    results_path = os.path.join(work, args.results)
    results = {}
    for name in sorted(os.listdir(work)):            # every lane's results, for the table
        if name.startswith("results") and name.endswith(".json"):
            results.update(json.load(open(os.path.join(work, name))))
    mine = json.load(open(results_path)) if os.path.exists(results_path) else {}
    for variant in [] if args.report_only else args.variants:
        for seed in args.seeds:
            key = f"{variant}/seed{seed}"
            if key in mine:
                continue
            run_dir = os.path.join(work, variant, f"seed{seed}")
            os.makedirs(run_dir, exist_ok=True)
            model = os.path.join(run_dir, "model.bin")
            entry: Dict = {"variant": variant, "seed": seed}
            config = os.path.join(run_dir, "config.json")
            with open(config, "w") as f:
                json.dump(VARIANTS.get(variant, {**BACKBONE, "target": ["mlm"], "tie_weights": True}), f, indent=2)
            if variant != "none":
                entry["metrics"] = model + ".metrics.jsonl"
                timing = os.path.join(run_dir, "pretrain.json")
                if not (os.path.exists(timing) and os.path.exists(model)):   # a finished pretraining is reused
                    start = time.time()
                    run([py, "pretrain.py", "--dataset_path", dataset, "--vocab_path", vocab,
                         "--config_path", config, "--output_model_path", model, "--total_steps", str(args.steps),
                         "--save_checkpoint_steps", str(args.steps), "--report_steps", "20",
                         "--batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate),
                         "--warmup", "0.1", "--seed", str(seed), "--num_workers", "1"],
                        os.path.join(run_dir, "pretrain.log"))
                    with open(timing, "w") as f:
                        json.dump({"pretrain_s": time.time() - start, "steps": args.steps}, f)
                entry["pretrain_s"] = json.load(open(timing))["pretrain_s"]
                last = [json.loads(line) for line in open(entry["metrics"])][-1]
                entry["final"] = {k: v for k, v in last.items() if isinstance(v, (int, float))}
            finetune = [py, "finetune/run_classifier.py", "--vocab_path", vocab, "--config_path", config,
                        "--train_path", train, "--dev_path", dev, "--test_path", test,
                        "--output_model_path", os.path.join(run_dir, "classifier.bin"),
                        "--epochs_num", str(args.finetune_epochs), "--batch_size", "32",
                        "--learning_rate", str(args.finetune_learning_rate),
                        "--seq_length", str(args.seq_length), "--report_steps", "50", "--seed", str(seed)]
            if variant != "none":
                finetune += ["--pretrained_model_path", model]
            log = run(finetune, os.path.join(run_dir, "finetune.log"))
            entry["finetune"] = {"train_rows": args.train_rows, "dev_rows": args.dev_rows, "test_rows": args.test_rows,
                                 "epochs": args.finetune_epochs, "learning_rate": args.finetune_learning_rate}
            entry["dev_acc"] = float(re.findall(r"^dev accuracy: ([0-9.]+)", log, re.M)[-1])
            entry["test_acc"] = float(re.findall(r"^test accuracy: ([0-9.]+)", log, re.M)[-1])
            results[key] = mine[key] = entry
            with open(results_path, "w") as f:
                json.dump(mine, f, indent=2)
    print("\n" + table(results))
    plot_curves(results, args.plot_dir or work, py)
    return results


def table(results: Dict) -> str:
    rows = ["| variant | dev acc per seed | dev mean | test acc per seed | test mean | "
            "final MLM acc (the generator's for RTD) | final RTD acc | pretraining s per run |",
            "|---|---|---:|---|---:|---:|---:|---:|"]
    by_variant: Dict[str, List[Dict]] = {}
    for entry in results.values():
        by_variant.setdefault(entry["variant"], []).append(entry)
    order = list(VARIANTS) + ["none"]
    for variant, entries in sorted(by_variant.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        entries = sorted(entries, key=lambda e: e["seed"])

        def per_seed(key):
            return ", ".join(f"{e[key]:.4f}" for e in entries), f"{sum(e[key] for e in entries) / len(entries):.4f}"

        def final(key):
            values = [e["final"][key] for e in entries if key in e.get("final", {})]
            return f"{sum(values) / len(values):.3f}" if values else "–"
        times = [e["pretrain_s"] for e in entries if "pretrain_s" in e]
        dev, test = per_seed("dev_acc"), per_seed("test_acc")
        rows.append(f"| {variant} | {dev[0]} | {dev[1]} | {test[0]} | {test[1]} | {final('mlm_acc')} | "
                    f"{final('rtd_acc')} | {sum(times) / len(times) if times else 0:.0f} |")
    return "\n".join(rows)


def plot_curves(results: Dict, out_dir: str, py: str) -> None:
    runs = [(k, e["metrics"]) for k, e in sorted(results.items()) if "metrics" in e and os.path.exists(e["metrics"])]
    if not runs:
        return
    for keys, name in ((["mlm_loss", "mlm_acc", "rtd_loss"], "rtd_bench_loss.png"), (["rtd_acc", "rtd_recall", "replaced_frac"],
                                                                    "rtd_bench_rtd.png")):
        subprocess.run([py, "scripts/plot_metrics.py", "--metrics", *[m for _, m in runs],
                        "--labels", *[k for k, _ in runs], "--keys", *keys,
                        "--output", os.path.join(out_dir, name)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
