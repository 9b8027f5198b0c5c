"""The quickstart: generate data -> build vocab -> preprocess -> pretrain a tiny BERT -> fine-tune ->
infer, each step run as the real command a user would type (printed before it runs)."""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from typing import List

from uer.quickstart.synthetic import generate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cmd: List[str]) -> str:
    """Run one step, streaming its output live, and return that output."""
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"quickstart: step failed with exit status {proc.returncode}")
    return "".join(lines)


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description="Run the whole pipeline on a generated corpus (no network).")
    p.add_argument("--output_dir", default="quickstart_output")
    p.add_argument("--pretrain_steps", type=int, default=300)
    p.add_argument("--epochs_num", type=int, default=3)
    p.add_argument("--documents", type=int, default=3000)
    args = p.parse_args(argv)
    start = time.time()
    out = os.path.abspath(args.output_dir)
    data = generate(os.path.join(out, "data"), documents=args.documents)
    print(f"generated corpus and labelled data in {out}/data")
    py = sys.executable
    vocab, spm = os.path.join(out, "vocab.txt"), os.path.join(out, "spm.model")
    dataset, model = os.path.join(out, "dataset"), os.path.join(out, "bert_tiny.bin")
    run([py, "scripts/build_vocab.py", "--corpus_path", data["corpus.txt"], "--vocab_path", vocab,
         "--spm_model_path", spm, "--vocab_size", "400", "--model_type", "bpe"])
    run([py, "preprocess.py", "--corpus_path", data["corpus.txt"], "--vocab_path", vocab,
         "--dataset_path", dataset, "--data_processor", "bert", "--seq_length", "64",
         "--processes_num", "2", "--dup_factor", "2"])
    run([py, "pretrain.py", "--dataset_path", dataset, "--vocab_path", vocab,
         "--config_path", "models/bert/tiny.json", "--output_model_path", model,
         "--total_steps", str(args.pretrain_steps), "--save_checkpoint_steps", str(args.pretrain_steps),
         "--report_steps", "50", "--batch_size", "32", "--learning_rate", "1e-3", "--warmup", "0.05",
         "--overwrite"])      # the quickstart's own folder: a second run starts over instead of being refused
    finetuned = os.path.join(out, "classifier.bin")
    log = run([py, "finetune/run_classifier.py", "--pretrained_model_path", model, "--vocab_path", vocab,
               "--train_path", data["train.tsv"], "--dev_path", data["dev.tsv"], "--test_path", data["test.tsv"],
               "--output_model_path", finetuned, "--epochs_num", str(args.epochs_num), "--batch_size", "32",
               "--learning_rate", "3e-4", "--seq_length", "64", "--report_steps", "20"])
    predictions = os.path.join(out, "predictions.tsv")
    run([py, "inference/run_classifier_infer.py", "--load_model_path", finetuned, "--vocab_path", vocab,
         "--test_path", data["test_nolabel.tsv"], "--prediction_path", predictions, "--seq_length", "64",
         "--output_prob"])
    # The closing "dev ..." line reports the best dev epoch (the model kept), not the per-epoch log lines.
    accuracy = float(re.findall(r"^dev accuracy: ([0-9.]+)", log, re.M)[-1])
    print(f"\nquickstart finished in {time.time() - start:.0f} s: dev accuracy {accuracy:.4f}; "
          f"predictions in {predictions}")
    return accuracy


if __name__ == "__main__":
    main()
