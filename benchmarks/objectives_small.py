"""What each pretraining objective reaches at small scale (issue 11, "How it is checked"): the same small
model size, the same steps, batch, learning rate and seed for every objective, on CLUECorpusSmall
(``zh/corpora``; ``mt``: the news-commentary en-zh pairs), each through the real preprocess.py and
pretrain.py commands (printed before they run).  Reported per row: the first and last logged training
loss (the objective's own total), the target-token accuracy on a held-out slice (the last
``--heldout_docs`` documents, kept out of training, noised/masked by the same processor with a fixed
seed; for METRO the exported encoder-decoder, as benchmarks/metro_t5_small.py scores it), tokens/s
(pretrain.py's own figure, real tokens, averaged over the logged reports) and wall time.

    OMP_NUM_THREADS=1 python benchmarks/objectives_small.py --work_dir /tmp/objectives --steps 60

Rows and what they are shrunk from (every one: hidden 128, 2 encoder + 2 decoder layers (2 layers for
decoder/encoder-only models), 4 heads x 32, FFN 512, dropout 0):
    t5        models/t5/small.json          t5 span corruption, init t5
    t5_v1_1   models/t5_v1_1/small.json     the same objective, gated-GELU, untied head
    bart      models/bart/base.json         bart text infilling + sentence permutation
    pegasus   models/pegasus/base.json      gsg gap sentences
    mt        models/transformer/base.json  mt en -> zh (Google en uncased / zh vocabularies)
    prefixlm  a pre-LN causal_with_prefix LM each zh line split at its middle into prefix<TAB>continuation
    ul2       models/ul2/base.json          ul2 mixture of denoisers (R, X, S) with mode tokens
    glm       models/glm/base.json          glm autoregressive blank infilling
    metro     models/metro/t5_base.json     t5 + generator MLM + RTD on the encoder (generator 1/2 width)
    bert_mlm  models/bert/base.json         mlm processor (RoBERTa-style dynamic masking), target mlm only
    gpt2_lm   models/gpt2/small.json        lm
and, with --rows, t5_bert_init / metro_bert_init: the t5 / metro rows with "init": "normal" (BERT's draw).

Accuracies are not comparable across rows as "quality": each is its own task (a masked token, a span,
a translation token, the next token).  They say each objective learns, and how far in the same budget.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from metro_t5_small import DATA, run  # noqa: E402  (the same command runner)

SHAPE = dict(emb_size=128, hidden_size=128, feedforward_size=512, heads_num=4, attention_head_size=32, layers_num=2,
             max_seq_length=256, dropout=0.0)
SEQ = "128"
ENC_DEC = ["--tgt_seq_length", SEQ]
PREFIX_LM = {"embedding": ["word", "pos"], "remove_embedding_layernorm": True, "mask": "causal_with_prefix",
             "layernorm_positioning": "pre", "target": ["lm"], "tie_weights": True, "data_processor": "prefixlm"}
# name: (config under models/ or a dict, processor, vocabulary kind, corpus kind, extra preprocess flags, overrides)
ROWS = {
    "t5": ("t5/small.json", "t5", "sentinel", "zh", ENC_DEC, {"decoder_layers_num": 2}),
    "t5_v1_1": ("t5_v1_1/small.json", "t5", "sentinel", "zh", ENC_DEC, {"decoder_layers_num": 2}),
    "bart": ("bart/base.json", "bart", "zh", "zh", ENC_DEC, {"decoder_layers_num": 2}),
    "pegasus": ("pegasus/base.json", "gsg", "zh", "zh", ENC_DEC, {"decoder_layers_num": 2}),
    "mt": ("transformer/base.json", "mt", "en", "mt", ENC_DEC, {"decoder_layers_num": 2}),
    "prefixlm": (PREFIX_LM, "prefixlm", "zh", "zh_pairs", [], {}),
    "ul2": ("ul2/base.json", "ul2", "ul2", "zh", [], {"decoder_layers_num": 2}),
    "glm": ("glm/base.json", "glm", "glm", "zh", [], {}),
    "metro": ("metro/t5_base.json", "t5", "sentinel", "zh", ENC_DEC, {"decoder_layers_num": 2}),
    "bert_mlm": ("bert/base.json", "mlm", "zh", "zh", [], {"target": ["mlm"], "data_processor": "mlm"}),
    "gpt2_lm": ("gpt2/small.json", "lm", "zh", "zh", [], {}),
    # the same T5 / METRO rows drawn with BERT's N(0, 0.02) instead of "init": "t5" (not in the default set)
    "t5_bert_init": ("t5/small.json", "t5", "sentinel", "zh", ENC_DEC, {"decoder_layers_num": 2, "init": "normal"}),
    "metro_bert_init": ("metro/t5_base.json", "t5", "sentinel", "zh", ENC_DEC, {"decoder_layers_num": 2, "init": "normal"}),
}
DEFAULT_ROWS = [name for name in ROWS if not name.endswith("_bert_init")]


def write_vocabularies(w) -> dict:
    google = open(os.path.join(DATA, "vocab", "google_zh_vocab.txt"), encoding="utf-8").read().rstrip("\n") + "\n"
    sentinels = "".join(f"[extra_id_{i}]\n" for i in range(100))
    extra = {"sentinel": sentinels, "ul2": sentinels + "[NLU]\n[NLG]\n[S2S]\n", "glm": "[sop]\n[eop]\n"}
    paths = {"zh": os.path.join(DATA, "vocab", "google_zh_vocab.txt"),
             "en": os.path.join(DATA, "vocab", "google_uncased_en_vocab.txt")}
    for kind, tail in extra.items():
        paths[kind] = w(f"vocab_{kind}.txt")
        with open(paths[kind], "w", encoding="utf-8") as f:
            f.write(google + tail)
    return paths


def write_corpora(w, train_docs: int, heldout_docs: int) -> dict:
    """{kind: (train path, held-out path)}: held-out = the file's last documents, never trained on."""
    with open(os.path.join(DATA, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), encoding="utf-8") as f:
        zh = [line for line in f if line.strip()]
    with open(os.path.join(DATA, "mt", "news-commentary-v13-en-zh_sampled.txt"), encoding="utf-8") as f:
        mt = [line for line in f if line.count("\t") == 1]
    halves = []
    for line in zh:     # prefix LM: the first half of a document as the bidirectional prefix
        text = line.strip().replace("\t", " ")
        halves.append(f"{text[: len(text) // 2]}\t{text[len(text) // 2:]}\n")
    splits = {"zh": (zh[:train_docs], zh[-heldout_docs:]), "zh_pairs": (halves[:train_docs], halves[-heldout_docs:]),
              "mt": (mt[:-heldout_docs], mt[-heldout_docs:])}
    paths = {}
    for kind, (train, heldout) in splits.items():
        paths[kind] = (w(f"{kind}_train.txt"), w(f"{kind}_heldout.txt"))
        for path, lines in zip(paths[kind], (train, heldout)):
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(lines)
    return paths


def vocab_flags(processor: str, vocab_kind: str, vocabs: dict) -> list:
    flags = ["--vocab_path", vocabs[vocab_kind]]
    return flags + ["--tgt_vocab_path", vocabs["zh"]] if processor == "mt" else flags


def heldout_accuracy(model_path: str, vocab_path: str, tgt_vocab_path, dataset: str, batch_size: int = 16) -> dict:
    """Target-token accuracy and loss of the trained model (a composite's exported backbone) on a held-out
    dataset, every instance once, masks/noise drawn with seed 0: the target's own metric weighted by its
    predicted-token count."""
    from uer.config import load_config
    from uer.data.collator import PretrainCollator
    from uer.data.dataset import IndexedDataset
    from uer.data.noising import build_noiser
    from uer.data.vocab import Vocab
    from uer.models import Model
    from uer.models.pretrained import backbone_config, backbone_source
    from uer.models.weights import load_weights
    vocab = Vocab.load(vocab_path)
    tgt_vocab = Vocab.load(tgt_vocab_path) if tgt_vocab_path else None
    trained = load_config(model_path + ".config.json")
    config = backbone_config(trained)
    model = Model(config)
    load_weights(model, backbone_source(trained, model_path))
    model.eval()
    data = IndexedDataset(dataset)
    collator = PretrainCollator(vocab, config.target, config.masking, 0, data.fields, seq_length=int(data.meta["seq_length"]),
                                max_length=config.max_seq_length, noiser=build_noiser(data.meta, vocab, 0),
                                tgt_vocab=tgt_vocab)
    name = config.target[0]
    correct = loss = total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = list(range(start, min(start + batch_size, len(data))))
            batch = collator([data[i] for i in idx], idx, 0)
            batch.pop("tokens", None)
            out = model(batch)
            if config.decoder:
                n = float(batch["tgt_seg"].sum())
            else:
                n = float((batch[f"{name}_labels"] != -100).sum())
            correct += float(out[f"{name}_acc"]) * n
            loss += float(out[f"{name}_loss"]) * n
            total += n
    return {"heldout_acc": correct / total, "heldout_loss": loss / total, "heldout_tokens": int(total)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", required=True)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--learning_rate", default="3e-3")
    p.add_argument("--train_docs", type=int, default=2000)
    p.add_argument("--heldout_docs", type=int, default=100)
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="comma-separated subset of: " + ", ".join(ROWS))
    args = p.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    w = lambda *names: os.path.join(args.work_dir, *names)   # noqa: E731
    vocabs, corpora = write_vocabularies(w), write_corpora(w, args.train_docs, args.heldout_docs)
    results = {}
    for name in args.rows.split(","):
        base, processor, vocab_kind, corpus_kind, pre_flags, overrides = ROWS[name]
        config = dict(base) if isinstance(base, dict) else json.load(open(os.path.join(ROOT, "models", base)))
        config.update(SHAPE, **overrides)
        if config.get("rtd"):       # METRO: a 1/2-width generator (1/3 of 128 is not a whole number of heads)
            config["rtd"] = {**config["rtd"], "generator_size_multiplier": 0.5}
        with open(w(f"{name}.json"), "w") as f:
            json.dump(config, f)
        flags = vocab_flags(processor, vocab_kind, vocabs)
        for split, corpus in zip(("train", "heldout"), corpora[corpus_kind]):
            if not os.path.isdir(w(f"ds_{name}_{split}")):
                run([sys.executable, "preprocess.py", "--corpus_path", corpus, "--dataset_path", w(f"ds_{name}_{split}"),
                     "--data_processor", processor, "--seq_length", SEQ, "--processes_num", "1", *pre_flags, *flags])
        out = w(f"{name}.bin")
        cmd = [sys.executable, "pretrain.py", "--dataset_path", w(f"ds_{name}_train"), "--config_path", w(f"{name}.json"),
               "--output_model_path", out, "--total_steps", str(args.steps), "--report_steps", str(max(args.steps // 10, 1)),
               "--batch_size", str(args.batch_size), "--warmup", "0.1", "--learning_rate", args.learning_rate,
               "--device", "cpu", "--seed", "7", "--overwrite", *flags]
        start = time.time()
        try:
            run(cmd)
        except subprocess.CalledProcessError as e:     # one objective failing does not cost the others' rows
            print(f"{name}: pretrain.py failed ({e.returncode}); row skipped", flush=True)
            continue
        seconds = time.time() - start
        records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
        tgt_vocab = vocabs["zh"] if processor == "mt" else None
        results[name] = {"first_loss": records[0]["loss"], "last_loss": records[-1]["loss"],
                         "tokens_per_s": sum(r["tokens_per_s"] for r in records) / len(records), "seconds": seconds,
                         "command": " ".join(cmd[1:]).replace(args.work_dir, "$W"),
                         **heldout_accuracy(out, vocabs[vocab_kind], tgt_vocab, w(f"ds_{name}_heldout"))}
        with open(w("results.json"), "w") as f:
            json.dump(results, f, indent=2)
    print(f"\n{args.steps} steps x {args.batch_size} sequences of {SEQ} tokens, lr {args.learning_rate} (warmup 10%), "
          f"seed 7, hidden 128, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"held-out: last {args.heldout_docs} documents\n")
    print("| objective | first loss | last loss | held-out target-token acc | held-out loss | tokens/s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['first_loss']:.3f} | {r['last_loss']:.3f} | {r['heldout_acc']:.3f} "
              f"({r['heldout_tokens']} tokens) | {r['heldout_loss']:.3f} | {r['tokens_per_s']:.0f} | {r['seconds']:.0f} |")
    print("\nCommands ($W = --work_dir):")
    for name, r in results.items():
        print(f"- {name}: `python {r['command']}`")


if __name__ == "__main__":
    main()
