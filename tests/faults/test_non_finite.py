"""Non-finite gradients and weights (issue 10, item 2): a step whose gradient norm is NaN/inf is
skipped (the weights stay as they were) and counted in the log; too many in a row stop the run;
weights that are no longer finite are never written to a checkpoint."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from uer.data.sampler import BatchSampler, CollatedBatches
from uer.training.engines import LocalEngine
from uer.training.metrics import MetricsLog
from uer.training.schedules import build_scheduler
from uer.training.trainer import Trainer, TrainerConfig, TrainingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PoisonedRegression(nn.Module):
    """A finite loss whose gradient is inf on batches holding a poisoned row: d sqrt(z)/dz at z = 0."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, batch):
        loss = (self.linear(batch["x"]) - batch["y"]).pow(2).mean()
        if bool(batch["poison"].any()):
            w = self.linear.weight
            loss = loss + torch.sqrt((w - w.detach()).sum() + self.nan_loss * -1.0)
        return {"loss": loss}

    nan_loss = 0.0      # 1.0: the poisoned batches' loss itself is NaN (sqrt of -1)


def trainer_for(tmp_path, poisoned, steps, **cfg):
    torch.manual_seed(0)
    data = [{"x": torch.randn(6), "y": torch.randn(3), "poison": i in poisoned} for i in range(64)]

    def collate(items, indices, epoch):
        return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items]),
                "poison": torch.tensor([i["poison"] for i in items]),
                "src": torch.zeros(len(items), 1, dtype=torch.long), "tokens": torch.tensor(len(items))}
    model = PoisonedRegression()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    engine = LocalEngine(model, opt, build_scheduler(opt, "constant", 0, steps), torch.device("cpu"))
    sampler = BatchSampler(64, 4, seed=1, shuffle=False)
    metrics = MetricsLog(str(tmp_path / "m.jsonl"))
    return Trainer(engine, CollatedBatches(data, collate), sampler,
                   TrainerConfig(total_steps=steps, report_steps=1, **cfg), metrics=metrics), engine


def test_a_nan_gradient_step_is_skipped_counted_and_the_run_goes_on(tmp_path, caplog):
    trainer, engine = trainer_for(tmp_path, poisoned={9}, steps=4)      # rows 8-11 are step 3's batch
    weights = []
    original_step = engine.step

    def step():
        out = original_step()
        weights.append(engine.model.linear.weight.detach().clone())
        return out
    engine.step = step
    with caplog.at_level("WARNING", logger="uer"):
        trainer.train()
    records = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    assert [r["skipped_steps"] for r in records] == [0, 0, 1, 1]
    assert not torch.isfinite(torch.tensor(records[2]["grad_norm"]))
    assert torch.equal(weights[1], weights[2])         # the poisoned step changed nothing
    assert not torch.equal(weights[2], weights[3])     # and the run went on
    assert all(torch.isfinite(w).all() for w in weights)
    assert "step 3: gradient norm inf, update skipped" in caplog.text


def test_non_finite_gradients_in_a_row_stop_the_run(tmp_path):
    trainer, engine = trainer_for(tmp_path, poisoned=set(range(64)), steps=10, max_skipped_in_a_row=3)
    before = engine.model.linear.weight.detach().clone()
    with pytest.raises(TrainingError, match="step 3: the last 3 updates were skipped for non-finite gradients"):
        trainer.train()
    assert torch.equal(before, engine.model.linear.weight)


def test_a_nan_loss_stops_before_the_backward_pass_naming_step_and_batch(tmp_path):
    trainer, engine = trainer_for(tmp_path, poisoned={9}, steps=4)
    engine.model.nan_loss = 1.0
    before = engine.model.linear.weight.detach().clone()
    trainer.train(until=2)
    after_two = engine.model.linear.weight.detach().clone()
    with pytest.raises(TrainingError, match=r"step 3: the loss is nan \(epoch 0, batch 2\); no checkpoint"):
        trainer.train()
    assert not torch.equal(before, after_two) and torch.equal(after_two, engine.model.linear.weight)


def test_weights_made_non_finite_by_a_huge_learning_rate_are_never_checkpointed(tiny_corpus, dataset, tmp_path):
    """lr 1e40 overflows float32 in the first update: the run stops before writing m.bin-1."""
    out = tmp_path / "m.bin"
    cmd = [sys.executable, os.path.join(ROOT, "pretrain.py"), "--dataset_path", dataset, "--vocab_path",
           str(tiny_corpus / "vocab.txt"), "--config_path", str(tiny_corpus / "tiny_bert.json"),
           "--output_model_path", str(out), "--total_steps", "4", "--save_checkpoint_steps", "1",
           "--report_steps", "1", "--batch_size", "4", "--learning_rate", "1e40", "--num_workers", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 1: the model's weights are no longer finite") and "Traceback" not in proc.stderr
    assert "no checkpoint was written yet" in last
    assert not [name for name in os.listdir(tmp_path) if name.startswith("m.bin-") or name == "m.bin"]
