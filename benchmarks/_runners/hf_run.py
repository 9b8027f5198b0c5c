"""One timed run of a plain ``transformers`` pretraining loop, fed the same batches as ours.

    python benchmarks/_runners/hf_run.py '<json spec>'     (written by benchmarks/pretrain_throughput.py)

The model is ``BertForPreTraining`` of our config's shape (SDPA attention, tied output embedding);
the loop is what one would write by hand with the sparse-head trick: the encoder, the hidden states
gathered at the collator's masked positions, then ``cls.predictions`` on those alone, NSP on the
pooled output, cross-entropy, backward, gradient clipping at 1.0, foreach AdamW (weight decay 0.01
but not on biases and LayerNorm), a linear warm-up/decay schedule — the work our Trainer does.
Batches come from our dataset, collator (dynamic masking) and the Trainer's DataLoader settings
(one worker, prefetch 4), and real tokens are the collator's ``tokens`` field, as for ours.
``--precision bf16`` in the spec's args runs forward and loss under bf16 autocast (fp32 weights), as
our ``pretrain.py --precision bf16`` does.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(1, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from uer.config import load_config  # noqa: E402
from uer.data.collator import PretrainCollator  # noqa: E402
from uer.data.dataset import IndexedDataset  # noqa: E402
from uer.data.sampler import BatchSampler, CollatedBatches  # noqa: E402
from uer.data.tokenizers import build_tokenizer  # noqa: E402
from throughput_clock import StepClock, emit  # noqa: E402


def _identity(x):
    return x


def build_hf(config, vocab_size: int):
    from transformers import BertConfig, BertForPreTraining
    hf = BertForPreTraining(BertConfig(vocab_size=vocab_size, hidden_size=config.hidden_size,
                                       num_hidden_layers=config.layers_num, num_attention_heads=config.heads_num,
                                       intermediate_size=config.feedforward_size, hidden_act=config.hidden_act,
                                       hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
                                       max_position_embeddings=config.max_seq_length,
                                       layer_norm_eps=config.layernorm_eps, attn_implementation="sdpa"))
    return hf


def optimizer_for(model, lr: float, total_steps: int):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, eps=1e-6, foreach=True)
    warmup = max(1, int(0.1 * total_steps))

    def linear(step: int) -> float:
        return step / warmup if step < warmup else max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, linear)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    clock = StepClock(spec["warmup"], spec["steps"], spec["name"])
    torch.manual_seed(spec["seed"])
    tokenizer = build_tokenizer("bert", spec["vocab_path"], None, True)
    dataset = IndexedDataset(spec["dataset_path"])
    config = load_config(spec["config_path"])
    collator = PretrainCollator(tokenizer.vocab, config.target, config.masking, spec["seed"], dataset.fields,
                                seq_length=int(dataset.meta["seq_length"]), max_length=config.max_seq_length)
    sampler = BatchSampler(len(dataset), spec["batch_size"], spec["seed"])
    batches = iter(DataLoader(CollatedBatches(dataset, collator), sampler=sampler, batch_size=None, num_workers=1,
                              collate_fn=_identity, generator=torch.Generator().manual_seed(0), prefetch_factor=4))
    hf = build_hf(config, len(tokenizer.vocab))
    hf.train()
    optimizer, scheduler = optimizer_for(hf, spec["learning_rate"], clock.total)
    vocab_size, hidden = hf.config.vocab_size, hf.config.hidden_size
    args = spec.get("args", [])
    bf16 = "--precision" in args and args[args.index("--precision") + 1] == "bf16"
    for _ in range(clock.total):
        batch = next(batches)
        src, seg = batch["src"], batch["seg"]
        clock.batch(batch["tokens"], src.size(1))
        positions, labels = batch["mlm_positions"], batch["mlm_labels"]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = hf.bert(input_ids=src, attention_mask=(seg > 0).long(), token_type_ids=(seg == 2).long())
            sequence, pooled = out[0], out[1]
            picked = sequence.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden))
            mlm_logits = hf.cls.predictions(picked)
            loss = F.cross_entropy(mlm_logits.reshape(-1, vocab_size).float(), labels.reshape(-1), ignore_index=-100) \
                + F.cross_entropy(hf.cls.seq_relationship(pooled).float(), batch["sp_labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0, foreach=True)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.loss(loss)
        clock.step_done()
    emit(clock.result(threads=torch.get_num_threads(), torch=torch.__version__))


if __name__ == "__main__":
    main()
