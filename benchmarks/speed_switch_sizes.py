"""What "unpad" and "lm_loss_chunk_size" save, counted rather than timed (timings on the shared 2-core
CPU are noise; GPU timing is pending): prints a markdown table.

unpad: real classification rows (default ChnSentiCorp train, [CLS] text [SEP] cut to --seq_length),
batches of --batch_size; a BERT-small encoder (models/bert/small.json) runs them padded and unpadded,
and forward hooks count the tokens that go through each layer's feed-forward; the layer FLOPs follow
from the counts (dense: 2 x matrix parameters per token; attention 4 x H x keys per query: L padded,
the batch's longest on the SDPA grid, the sequence's own length with flash-attn's varlen kernel).

fused_lm_loss / lm_loss_chunk_size: an LM head (--positions x the vocabulary's rows x --hidden) forward +
backward, plain and fused (whole, chunked): the largest tensor any op returns (at least the weight's gradient, which any
path makes), and the activation bytes autograd keeps saved between forward and backward
(saved_tensors_hooks; the hidden states and the weight themselves not counted).  torch's CPU
allocator keeps no peak statistics and tracemalloc does not see its buffers, so these two are what
we can measure without a GPU.

    OMP_NUM_THREADS=1 python benchmarks/speed_switch_sizes.py --data_dir ../shared/data
"""

import argparse
import dataclasses
import os

import torch
import torch.nn.functional as F

from uer.config import load_config
from uer.data.tokenizers import BertTokenizer
from uer.data.vocab import Vocab
from uer.models import build_model
from uer.targets.vocab_loss import vocab_cross_entropy
from uer.tools.largest_tensor import LargestTensor


def read_rows(path: str, tokenizer: BertTokenizer, seq_length: int, count: int):
    vocab = tokenizer.vocab
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)                                   # header: label, text_a
        for line in f:
            text = line.rstrip("\n").split("\t")[-1]
            ids = [vocab.token_to_id("[CLS]")] + tokenizer.encode(text)[: seq_length - 2] + [vocab.token_to_id("[SEP]")]
            rows.append(ids)
            if len(rows) == count:
                break
    return rows


def unpad_counts(args, vocab: Vocab):
    tokenizer = BertTokenizer(vocab)
    rows = read_rows(args.corpus, tokenizer, args.seq_length, args.batch_size * args.batches)
    config = dataclasses.replace(load_config(args.config), vocab_size=len(vocab), dropout=0.0)
    torch.manual_seed(0)
    models = {False: build_model(config).eval()}
    models[True] = build_model(dataclasses.replace(config, unpad=True)).eval()
    models[True].load_state_dict(models[False].state_dict())
    seen = {False: 0, True: 0}
    for flag, model in models.items():
        for layer in model.encoder.layers:
            layer.feed_forward.register_forward_hook(
                lambda m, i, o, flag=flag: seen.__setitem__(flag, seen[flag] + i[0].shape[:-1].numel()))
    real = grid_keys = own_keys = 0
    worst = 0.0
    for b in range(args.batches):
        batch = rows[b * args.batch_size:(b + 1) * args.batch_size]
        src = torch.zeros(len(batch), args.seq_length, dtype=torch.long)
        for i, ids in enumerate(batch):
            src[i, :len(ids)] = torch.tensor(ids)
        seg = (src > 0).long()
        with torch.no_grad():
            a = models[False].encode(src, seg)
            b_ = models[True].encode(src, seg)
        worst = max(worst, float((a - b_)[seg > 0].abs().max()))
        lengths = [len(ids) for ids in batch]
        real += sum(lengths)
        grid_keys += len(lengths) * max(lengths) ** 2
        own_keys += sum(n * n for n in lengths)
    layers, hidden = config.layers_num, config.hidden_size
    dense = 2.0 * sum(p.numel() for p in models[False].encoder.layers[0].parameters() if p.dim() == 2)
    padded_tokens = args.batch_size * args.batches * args.seq_length
    flops_padded = layers * (padded_tokens * dense + 4.0 * hidden * padded_tokens * args.seq_length)
    flops_grid = layers * (real * dense + 4.0 * hidden * grid_keys)
    flops_varlen = layers * (real * dense + 4.0 * hidden * own_keys)
    return {"rows": len(rows), "real": real, "padded_tokens": padded_tokens,
            "ffn_padded": seen[False], "ffn_unpadded": seen[True], "flops": (flops_padded, flops_grid, flops_varlen),
            "max_diff": worst}


def saved_bytes(fn, inputs):
    """Bytes autograd saves for backward during ``fn()`` (each storage once, ``inputs`` not counted),
    with the largest op output."""
    saved = {}
    skip = {t.untyped_storage().data_ptr() for t in inputs}

    def pack(t):
        if t.untyped_storage().data_ptr() not in skip:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with LargestTensor() as mode, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
        loss.backward()
    return loss.detach(), sum(saved.values()), mode.largest


def chunked_sizes(args, vocab_rows: int, vocab_size: int):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.positions, args.hidden, generator=g, requires_grad=True)
    weight = (torch.randn(vocab_rows, args.hidden, generator=g) * 0.02).requires_grad_()
    labels = torch.randint(0, vocab_size, (args.positions,), generator=g)

    def plain():
        logits = F.linear(hidden, weight)[:, :vocab_size]
        return F.cross_entropy(logits.float(), labels)
    out = {"plain": saved_bytes(plain, (hidden, weight))}
    for chunk in args.chunks:
        out[chunk] = saved_bytes(lambda: vocab_cross_entropy(hidden, weight, None, labels, vocab_size, chunk)[0],
                                 (hidden, weight))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=os.environ.get("UER_DATA_DIR", "../shared/data"))
    p.add_argument("--corpus", default=None, help="a label<TAB>text TSV with a header (default ChnSentiCorp train)")
    p.add_argument("--config", default="models/bert/small.json")
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--positions", type=int, default=2048, help="LM positions per step for the loss sizes")
    p.add_argument("--hidden", type=int, default=128, help="hidden size of the LM head for the loss sizes")
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 128, 512],
                   help="lm_loss_chunk_size values of the fused loss (0: all positions at once)")
    args = p.parse_args()
    args.corpus = args.corpus or os.path.join(args.data_dir, "zh/chnsenticorp/train.tsv")
    vocab = Vocab.load(os.path.join(args.data_dir, "vocab/google_zh_vocab.txt"))
    torch.set_num_threads(max(1, torch.get_num_threads()))

    u = unpad_counts(args, vocab)
    fp, fg, fv = u["flops"]
    print(f"## unpad: {u['rows']} rows of {os.path.basename(args.corpus)}, BERT-small, batch {args.batch_size} x "
          f"seq {args.seq_length}\n")
    print("| | padded | unpadded (SDPA grid) | unpadded (flash varlen) |\n|---|---:|---:|---:|")
    print(f"| tokens through the FFN | {u['ffn_padded']} | {u['ffn_unpadded']} | {u['ffn_unpadded']} |")
    print(f"| encoder forward GFLOP, {args.batches} batches | {fp / 1e9:.1f} | {fg / 1e9:.1f} ({fp / fg:.2f}x less) | "
          f"{fv / 1e9:.1f} ({fp / fv:.2f}x less) |")
    print(f"\nreal tokens {u['real']} of {u['padded_tokens']} ({100.0 * u['real'] / u['padded_tokens']:.1f}%); "
          f"largest |padded - unpadded| on real tokens: {u['max_diff']:.2e}\n")

    rows = int(-(-len(vocab) // 64) * 64)
    sizes = chunked_sizes(args, rows, len(vocab))
    print(f"## fused_lm_loss / lm_loss_chunk_size: {args.positions} positions x vocab {len(vocab)} ({rows} rows) x "
          f"hidden {args.hidden}, forward + backward\n")
    print("| loss | loss value | saved for backward (MB) | largest tensor (MB) |\n|---|---:|---:|---:|")
    for chunk, (loss, saved, largest) in sizes.items():
        name = "plain (fused_lm_loss false)" if chunk == "plain" else f"fused, chunk {chunk or 'all'}"
        print(f"| {name} | {float(loss):.6f} | {saved / 2**20:.1f} | {largest / 2**20:.1f} |")


if __name__ == "__main__":
    main()
