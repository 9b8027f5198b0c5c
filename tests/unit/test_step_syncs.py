"""The training loop makes no host sync between log steps (issue 14, item 1).

``torch.cuda.set_sync_debug_mode`` needs a GPU; on the CPU the same property is checked by
counting every call that would copy a device value to the host (``Tensor.item``, ``tolist``,
``bool()``, ``float()``, ``int()``, ``.cpu()``, ...) while the Trainer runs.  Data loading (host
batches) and the sync points (log steps, checkpoints) are paused; every other call is a per-step
sync and is reported with its file and line."""

import contextlib
import os
import sys

import pytest
import torch
from torch import nn

from uer.config import config_from_dict
from uer.data.sampler import BatchSampler, CollatedBatches
from uer.layers.host_lengths import HostLengths
from uer.models import build_model
from uer.training.engines import LocalEngine
from uer.training.flops import BatchFlops
from uer.training.optim import build_optimizer
from uer.training.schedules import build_scheduler
from uer.training.trainer import Trainer, TrainerConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNC_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")

# Syncs of the model's forward pass in files other sessions own (issue 14 item 1 lists them:
# the attention mask's "is there padding at all" test).  Everything else must stay at zero.
KNOWN_MODEL_SYNC_FILES = set()

VOCAB = 200
TINY_BERT = {"embedding": ["word", "pos", "seg"], "vocab_size": VOCAB, "emb_size": 32, "hidden_size": 32,
             "feedforward_size": 64, "heads_num": 2, "layers_num": 2, "max_seq_length": 16, "dropout": 0.1,
             "target": ["mlm", "sp"]}


class SyncCounter:
    """Records (method, file, line) of every device-to-host conversion outside paused regions;
    those inside ``at_sync_point`` regions go to ``at_sync`` instead."""

    def __init__(self):
        self.outside, self.at_sync = [], []
        self._mode = "count"

    @contextlib.contextmanager
    def mode(self, mode):
        before, self._mode = self._mode, mode
        try:
            yield
        finally:
            self._mode = before

    def install(self, monkeypatch):
        for name in SYNC_METHODS:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, _name=name, **kwargs):
                if self._mode != "ignore":
                    frame = sys._getframe(1)
                    site = (_name, os.path.relpath(frame.f_code.co_filename, ROOT), frame.f_lineno)
                    (self.outside if self._mode == "count" else self.at_sync).append(site)
                return _original(tensor, *args, **kwargs)
            monkeypatch.setattr(torch.Tensor, name, counted)

    def pause_in(self, monkeypatch, owner, method, mode):
        original = getattr(owner, method)

        def paused(*args, **kwargs):
            with self.mode(mode):
                return original(*args, **kwargs)
        monkeypatch.setattr(owner, method, paused)


def counting(monkeypatch, trainer):
    """Install the counter around ``trainer``: loading ignored, log steps and saves at_sync."""
    counter = SyncCounter()
    make_loader = trainer._loader

    def loader():
        with counter.mode("ignore"):      # the DataLoader draws its base seed with .item() (CPU)
            batches = make_loader()

        def fetch():
            while True:
                with counter.mode("ignore"):          # host batches: collating is not a device sync
                    batch = next(batches)
                yield batch
        return fetch()
    monkeypatch.setattr(trainer, "_loader", loader)
    for method in ("_log_step", "_check_pending", "save"):
        counter.pause_in(monkeypatch, trainer, method, "sync")
    counter.install(monkeypatch)
    return counter


def bert_batches(n=64, length=12, seed=0):
    """BERT-style instances with padding (2-3 pad positions per row), collated as the real collator does."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        real = length - 2 - i % 2
        src = torch.zeros(length, dtype=torch.long)
        src[:real] = torch.randint(5, VOCAB, (real,), generator=g)
        seg = torch.zeros(length, dtype=torch.long)
        seg[: real // 2], seg[real // 2: real] = 1, 2
        rows.append({"src": src, "seg": seg, "pos": torch.randperm(real, generator=g)[:2].sort().values,
                     "nsp": int(torch.randint(0, 2, (1,), generator=g))})

    def collate(items, indices, epoch):
        src = torch.stack([r["src"] for r in items])
        seg = torch.stack([r["seg"] for r in items])
        positions = torch.stack([r["pos"] for r in items])
        return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": src.gather(1, positions),
                "sp_labels": torch.tensor([r["nsp"] for r in items]), "tokens": (seg > 0).sum(),
                "seg_lengths": HostLengths.of(seg)}
    return CollatedBatches(rows, collate)


def bert_trainer(tmp_path=None, steps=4, report_steps=2, accumulation=2, optimizer=None, **cfg):
    torch.manual_seed(0)
    model = build_model(config_from_dict(TINY_BERT, "test"))
    opt = optimizer(model) if optimizer else build_optimizer(model, 1e-3)
    engine = LocalEngine(model, opt, build_scheduler(opt, "linear", 1, steps), torch.device("cpu"),
                         accumulation_steps=accumulation)
    from uer.training.metrics import MetricsLog
    metrics = MetricsLog(str(tmp_path / "m.jsonl")) if tmp_path is not None else None
    trainer = Trainer(engine, bert_batches(), BatchSampler(64, 4, seed=1),
                      TrainerConfig(total_steps=steps, report_steps=report_steps, accumulation_steps=accumulation,
                                    **cfg),
                      metrics=metrics, batch_flops=BatchFlops.of_model(model, 0.15))
    return trainer, engine


def test_the_counter_sees_a_sync_it_is_shown(monkeypatch):
    """The counter itself can fail: a metric read with .item() inside the step is caught, with its line."""
    trainer, engine = bert_trainer()
    forward = engine.forward

    def forward_with_item(batch):
        out = forward(batch)
        out["peeked"] = torch.tensor(out["loss"].item())
        return out
    engine.forward = forward_with_item
    counter = counting(monkeypatch, trainer)
    trainer.train()
    assert ("item", "tests/unit/test_step_syncs.py") in {site[:2] for site in counter.outside}


def test_no_host_sync_between_log_steps_for_a_bert_step(monkeypatch):
    """4 optimizer steps x 2 micro-batches, fused AdamW (build_optimizer's choice): the Trainer, the
    engine, the targets and the metrics make no sync; only the known mask check in the model does."""
    trainer, engine = bert_trainer()
    assert getattr(engine.optimizer, "_step_supports_amp_scaling", False)      # fused: device-side skip
    counter = counting(monkeypatch, trainer)
    trainer.train()
    foreign = [site for site in counter.outside if site[1] not in KNOWN_MODEL_SYNC_FILES]
    assert foreign == [], foreign
    assert counter.at_sync                                     # the log steps do read values back


def test_log_step_syncs_do_not_grow_with_the_steps_between_them(monkeypatch):
    """The values of an interval come back together: 1 or 3 optimizer steps per report, the same
    number of device-to-host reads per log step."""
    per_log = []
    for report_steps in (1, 3):
        with monkeypatch.context() as patch:
            trainer, _ = bert_trainer(steps=3, report_steps=report_steps, accumulation=1)
            counter = counting(patch, trainer)
            trainer.train()
            per_log.append(len(counter.at_sync) / (3 // report_steps))
    assert per_log[0] == per_log[1] and per_log[0] <= 6, per_log


class Regression(nn.Module):
    """A model whose forward makes no sync, to check the loop alone with zero tolerance."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, batch):
        loss = (self.linear(batch["x"]) - batch["y"]).pow(2).mean()
        return {"loss": loss, "err": loss.detach().sqrt()}


def regression_trainer(optimizer):
    torch.manual_seed(0)
    data = [{"x": torch.randn(6), "y": torch.randn(3)} for _ in range(32)]

    def collate(items, indices, epoch):
        return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items]),
                "src": torch.zeros(len(items), 1, dtype=torch.long), "tokens": torch.tensor(len(items))}
    model = Regression()
    opt = optimizer(model.parameters())
    engine = LocalEngine(model, opt, build_scheduler(opt, "constant", 0, 6), torch.device("cpu"), accumulation_steps=3)
    return Trainer(engine, CollatedBatches(data, collate), BatchSampler(32, 4, seed=1),
                   TrainerConfig(total_steps=6, report_steps=3, accumulation_steps=3))


def test_the_loop_alone_makes_no_sync_with_a_fused_optimizer(monkeypatch):
    trainer = regression_trainer(lambda params: torch.optim.AdamW(params, lr=0.01, fused=True))
    counter = counting(monkeypatch, trainer)
    trainer.train()
    assert counter.outside == []


def test_an_optimizer_without_a_device_skip_flag_costs_one_sync_per_optimizer_step(monkeypatch):
    """Adafactor / a non-fused AdamW cannot take the skip decision on the device: the engine reads
    the flag once per optimizer step (6), never per micro-step (18)."""
    trainer = regression_trainer(lambda params: torch.optim.AdamW(params, lr=0.01, foreach=True))
    counter = counting(monkeypatch, trainer)
    trainer.train()
    # (torch's foreach AdamW reads its step counters with .item(): CPU tensors unless capturable)
    ours = [site for site in counter.outside if site[1].startswith("uer/")]
    assert len(ours) == 6
    assert {site[:2] for site in ours} == {("__bool__", "uer/training/engines/local.py")}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
def test_a_nan_gradient_is_skipped_on_the_device_and_reported_at_the_log_step(fused, caplog):
    """The skip is taken without a sync and reported late, but exactly: weights and moments as before
    the poisoned step, the step named, the count right."""
    torch.manual_seed(0)
    model = Regression()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=fused, foreach=not fused)
    engine = LocalEngine(model, opt, build_scheduler(opt, "constant", 0, 4), torch.device("cpu"))
    batch = {"x": torch.randn(4, 6), "y": torch.randn(4, 3)}
    engine.backward(engine.forward(batch)["loss"])
    engine.step()
    before = [p.detach().clone() for p in model.parameters()]
    moments = [opt.state[p]["exp_avg"].clone() for p in model.parameters()]
    w = model.linear.weight
    engine.backward(engine.forward(batch)["loss"] + torch.sqrt((w - w.detach()).sum()))   # finite loss, inf gradient
    grad_norm, skipped = engine.step()
    assert bool(skipped) and not torch.isfinite(torch.as_tensor(grad_norm))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(torch.equal(m, opt.state[p]["exp_avg"]) for m, p in zip(moments, model.parameters()))
    assert int(opt.state[model.linear.weight]["step"]) == 1
    assert engine.skipped_steps == 1
    engine.backward(engine.forward(batch)["loss"])
    engine.step()
    assert not torch.equal(before[0], model.linear.weight) and engine.skipped_steps == 1


def test_a_nan_loss_with_finite_gradients_skips_the_update_in_one_process():
    """A loss made NaN by a term without gradient still skips the step (the loss flag joins the
    gradient-norm flag on the device)."""
    torch.manual_seed(0)
    model = Regression()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, fused=True)
    engine = LocalEngine(model, opt, build_scheduler(opt, "constant", 0, 4), torch.device("cpu"))
    batch = {"x": torch.randn(4, 6), "y": torch.randn(4, 3)}
    before = model.linear.weight.detach().clone()
    engine.backward(engine.forward(batch)["loss"] + torch.tensor(float("nan")))
    grad_norm, skipped = engine.step()
    assert torch.isfinite(grad_norm) and bool(skipped)
    assert torch.equal(before, model.linear.weight)


def test_a_nan_loss_between_log_steps_stops_the_run_naming_its_step(monkeypatch):
    """report_steps 4: the NaN loss of step 2 is found at the log step (4), the error names step 2
    and its batch, and no update was made from it."""
    trainer = regression_trainer(lambda params: torch.optim.AdamW(params, lr=0.01, fused=True))
    trainer.cfg = TrainerConfig(total_steps=6, report_steps=4, accumulation_steps=1)
    trainer.engine.accumulation_steps = 1
    forward = trainer.engine.forward
    calls = []

    def poisoned(batch):
        calls.append(1)
        out = forward(batch)
        if len(calls) == 2:
            out["loss"] = out["loss"] * float("nan")
        return out
    trainer.engine.forward = poisoned
    from uer.training.trainer import TrainingError
    with pytest.raises(TrainingError, match=r"step 2: the loss is nan \(epoch 0, batch 1\)"):
        trainer.train()
    assert len(calls) == 4 and trainer.engine.skipped_steps == 1


# -- the model's forward and backward, batches from the real collator -----------------------------
# The collator hands seg's lengths to the model on the host (uer.layers.host_lengths): the masks'
# "is there padding" choice, unpadding's stream size and the decoder's masks read nothing back.

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]
SMALL = {"vocab_size": len(WORDS), "emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 2,
         "layers_num": 2, "max_seq_length": 32, "dropout": 0.1}
MODELS = {
    "bert": ({**SMALL, "embedding": ["word", "pos", "seg"], "target": ["mlm", "sp"]}, ("mlm", "sp")),
    "gpt2": ({**SMALL, "embedding": ["word", "pos"], "mask": "causal", "layernorm_positioning": "pre",
              "target": ["lm"]}, ("lm",)),
    "t5": ({**SMALL, "embedding": ["word"], "tgt_embedding": ["word"], "decoder": "transformer", "target": ["lm"],
            "relative_position_embedding": True, "relative_attention_buckets_num": 8,
            "relative_attention_max_distance": 20, "remove_attention_scale": True, "layernorm": "t5",
            "layernorm_positioning": "pre", "remove_transformer_bias": True, "remove_embedding_layernorm": True,
            "share_embedding": True}, ("lm",)),
    "deberta": ({**SMALL, "embedding": ["word"], "encoder": "deberta", "target": ["mlm"], "data_processor": "mlm"},
                ("mlm",)),
    "unpad": ({**SMALL, "embedding": ["word", "pos", "seg"], "unpad": True, "target": ["mlm"]}, ("mlm",)),
    # a composite: the generator's and the discriminator's encoders both get the batch's lengths
    "electra": ({**SMALL, "embedding": ["word", "pos", "seg"], "target": ["mlm", "rtd"], "pretrainer": "electra"},
                ("mlm", "rtd")),
}


def collated(name):
    """A batch of 4 rows of different lengths (padding in every model's input), as pretraining gets it."""
    from uer.config import MaskingConfig
    from uer.data.collator import PretrainCollator
    from uer.data.vocab import Vocab
    targets = MODELS[name][1]
    g = torch.Generator().manual_seed(0)
    items = []
    for n in (9, 14, 6, 11):
        item = {"src": torch.randint(5, len(WORDS), (n,), generator=g).numpy(), "seg_a_len": n // 2, "label": n % 2}
        if name == "t5":
            item["tgt"] = torch.randint(5, len(WORDS), (n // 2 + 1,), generator=g).numpy()
        items.append(item)
    fields = ["seg_a_len", "label"] if "sp" in targets else []
    collate = PretrainCollator(Vocab(WORDS), list(targets), MaskingConfig(), 7, fields, seq_length=16, max_length=32)
    return collate(items, [0, 1, 2, 3], epoch=0)


def forward_backward_syncs(monkeypatch, name, batch, model=None):
    torch.manual_seed(0)
    model = model or build_model(config_from_dict(MODELS[name][0], "test"))
    counter = SyncCounter()
    with monkeypatch.context() as patch:
        counter.install(patch)
        out = model(batch)
        out["loss"].backward()
    return counter.outside, out["loss"].detach()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_forward_and_backward_make_no_sync_with_host_lengths(monkeypatch, name):
    """BERT (padding), GPT-2, T5 (encoder and decoder masks), DeBERTa, unpadded BERT, ELECTRA: no device-to-host
    read in the model's step, beyond the files named in KNOWN_MODEL_SYNC_FILES."""
    batch = collated(name)
    assert batch["seg_lengths"].has_padding
    torch.manual_seed(0)
    model = build_model(config_from_dict(MODELS[name][0], "test"))
    first, _ = forward_backward_syncs(monkeypatch, name, batch, model)
    if name == "deberta":
        # DeBERTa's gather indices are built from host tensors (torch.arange on the CPU, never a device
        # value) whose min/max it reads once per (q_len, k_len) and caches: the first step only.
        assert first and {site[1] for site in first} == {"uer/layers/relative_position.py"}
        first, _ = forward_backward_syncs(monkeypatch, name, batch, model)
    assert [site for site in first if site[1] not in KNOWN_MODEL_SYNC_FILES] == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_without_host_lengths_the_model_reads_them_back_with_the_same_result(monkeypatch, name):
    """The fallback (generation, tasks, hand-made batches): one read of seg from the device per mask,
    and a loss bit-identical to the one computed from the host lengths."""
    batch = collated(name)
    bare = {k: v for k, v in batch.items() if not k.endswith("seg_lengths")}
    with_host = forward_backward_syncs(monkeypatch, name, batch)[1]
    syncs, without = forward_backward_syncs(monkeypatch, name, bare)
    assert torch.equal(with_host, without)
    assert {site[1] for site in syncs} & {"uer/layers/host_lengths.py", "uer/layers/unpad.py"}


def test_host_lengths_of_another_shape_are_not_trusted():
    """Lengths that do not describe seg (a model that rebuilt it) fall back to the device check."""
    from uer.layers.host_lengths import has_padding
    seg = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert HostLengths.of(seg) == HostLengths((2, 3), 3) and HostLengths.of(seg).has_padding
    assert has_padding(HostLengths((3, 3), 3), seg) is False           # trusted: same shape (no read)
    assert has_padding(HostLengths((4, 4), 4), seg) is True            # another shape: read back
    assert has_padding(None, torch.ones(2, 3, dtype=torch.long)) is False
