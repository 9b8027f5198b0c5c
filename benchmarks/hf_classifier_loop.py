"""The plain ``transformers`` reference of benchmarks/finetune_throughput.py: a hand-written
BertForSequenceClassification fine-tuning loop and an inference loop, what a user writes without a toolkit.

It mirrors run_classifier.py's settings: BertTokenizerFast on the same vocab, truncation to --seq_length,
each batch padded to its longest row, SDPA attention, AdamW (fused where torch has it, like ours; no
decay on biases and LayerNorm weights), linear schedule with warmup, gradient clipping at 1.0, dev
accuracy after each epoch.  It prints the lines the benchmark times ("start training", "step N", "dev
accuracy", "predicting"); everything before them (imports, tokenization, model load) is startup.

    python benchmarks/hf_classifier_loop.py train --model_dir DIR --vocab_path V --train_path T --dev_path D --output_dir O
    python benchmarks/hf_classifier_loop.py infer --model_dir O --vocab_path V --test_path X --prediction_path P
"""

import argparse
import os
import sys
from typing import List, Tuple

import torch


def read_tsv(path: str) -> Tuple[List[str], List[int]]:
    """UER-style TSV with a header naming text_a (and label when labelled)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if "text_a" not in header:
            raise SystemExit(f"{path}: header {header} has no text_a column")
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    text = [r[header.index("text_a")] for r in rows]
    labels = [int(r[header.index("label")]) for r in rows] if "label" in header else []
    return text, labels


def encode(tokenizer, texts: List[str], seq_length: int) -> List[List[int]]:
    return tokenizer(texts, truncation=True, max_length=seq_length)["input_ids"]


def pad_batch(rows: List[List[int]], pad_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest row of the batch (what DataCollatorWithPadding does, without its overhead)."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def build_optimizer(model, lr: float, weight_decay: float):
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, eps=1e-6, foreach=True)


@torch.inference_mode()
def predict(model, rows: List[List[int]], batch_size: int, pad_id: int) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        ids, mask = pad_batch(rows[start:start + batch_size], pad_id)
        out.append(model(input_ids=ids, attention_mask=mask).logits.argmax(-1))
    return torch.cat(out)


def train(a) -> None:
    from transformers import BertForSequenceClassification, BertTokenizerFast, get_linear_schedule_with_warmup
    torch.manual_seed(a.seed)
    tokenizer = BertTokenizerFast(vocab_file=a.vocab_path, do_lower_case=True)
    train_text, train_labels = read_tsv(a.train_path)
    dev_text, dev_labels = read_tsv(a.dev_path)
    train_rows, dev_rows = encode(tokenizer, train_text, a.seq_length), encode(tokenizer, dev_text, a.seq_length)
    labels = torch.tensor(train_labels)
    model = BertForSequenceClassification.from_pretrained(a.model_dir, num_labels=max(train_labels) + 1,
                                                          attn_implementation="sdpa")
    optimizer = build_optimizer(model, a.learning_rate, 0.01)
    steps_per_epoch = -(-len(train_rows) // a.batch_size)
    total = steps_per_epoch * a.epochs_num
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * a.warmup), total)
    pad_id = tokenizer.pad_token_id
    generator = torch.Generator().manual_seed(a.seed)
    print("start training", flush=True)
    step, best = 0, -1.0
    for epoch in range(1, a.epochs_num + 1):
        model.train()
        order = torch.randperm(len(train_rows), generator=generator).tolist()
        for start in range(0, len(order), a.batch_size):
            chosen = order[start:start + a.batch_size]
            ids, mask = pad_batch([train_rows[i] for i in chosen], pad_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels[chosen]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            print(f"step {step}/{total} loss {loss.item():.4f}", flush=True)
        accuracy = (predict(model, dev_rows, a.batch_size, pad_id) == torch.tensor(dev_labels)).float().mean().item()
        print(f"epoch {epoch}: dev accuracy: {accuracy:.4f}", flush=True)
        if accuracy > best:
            best = accuracy
            model.save_pretrained(a.output_dir)
            tokenizer.save_pretrained(a.output_dir)
    print(f"dev accuracy: {best:.4f}", flush=True)


def infer(a) -> None:
    from transformers import BertForSequenceClassification, BertTokenizerFast
    tokenizer = BertTokenizerFast(vocab_file=a.vocab_path, do_lower_case=True)
    text, _ = read_tsv(a.test_path)
    rows = encode(tokenizer, text, a.seq_length)
    model = BertForSequenceClassification.from_pretrained(a.model_dir, attn_implementation="sdpa")
    print(f"predicting {len(rows)} examples", flush=True)
    predicted = predict(model, rows, a.batch_size, tokenizer.pad_token_id).tolist()
    with open(a.prediction_path, "w", encoding="utf-8") as f:
        f.write("label\n" + "".join(f"{p}\n" for p in predicted))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "infer"])
    p.add_argument("--model_dir", required=True, help="train: the start (a converted BERT); infer: train's output")
    p.add_argument("--vocab_path", required=True)
    p.add_argument("--train_path")
    p.add_argument("--dev_path")
    p.add_argument("--test_path")
    p.add_argument("--output_dir")
    p.add_argument("--prediction_path")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--epochs_num", type=int, default=1)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    needed = ("train_path", "dev_path", "output_dir") if a.mode == "train" else ("test_path", "prediction_path")
    missing = [f"--{n}" for n in needed if getattr(a, n) is None]
    if missing:
        p.error(f"{a.mode} needs {' '.join(missing)}")
    for path in (a.vocab_path, a.train_path, a.dev_path, a.test_path):
        if path is not None and not os.path.isfile(path):
            p.error(f"{path} does not exist")
    (train if a.mode == "train" else infer)(a)


if __name__ == "__main__":
    sys.exit(main())
