"""The engine interface around the Trainer: single-process defaults, the DDP engine in a one-process
gloo group (gradient sync only on the last micro-batch), per-rank RNG in the training state, and
the refusal to resume with a different number of processes."""

import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

from uer.errors import ConfigError
from uer.training.engines import Engine, LocalEngine
from uer.training.schedules import build_scheduler
from uer.data.sampler import BatchSampler
from uer.training.trainer import Trainer, TrainerConfig


class Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, batch):
        return {"loss": (self.linear(batch["x"]) - batch["y"]).pow(2).mean()}


def engine_parts(seed=0):
    torch.manual_seed(seed)
    model = Regression()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, opt, build_scheduler(opt, "constant", 0, 10)


def test_single_process_defaults():
    engine = LocalEngine(*engine_parts(), torch.device("cpu"))
    assert isinstance(engine, Engine)
    assert (engine.rank, engine.world_size, engine.is_main) == (0, 1, True)
    assert engine.reduce_mean({"loss": 2.0}) == {"loss": 2.0}
    assert engine.gather("x") == ["x"]
    engine.barrier()


@pytest.fixture
def one_process_group(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    from uer.training.distributed import init_process_group
    device = init_process_group("ddp", "cpu")
    yield device
    dist.destroy_process_group()


def test_ddp_engine_matches_local_and_syncs_only_the_last_micro_batch(one_process_group, monkeypatch):
    from uer.training.engines.ddp import DDPEngine
    local = LocalEngine(*engine_parts(), torch.device("cpu"), accumulation_steps=2)
    ddp = DDPEngine(*engine_parts(), one_process_group, accumulation_steps=2)
    assert (ddp.rank, ddp.world_size, ddp.is_main) == (0, 1, True)
    syncs = []
    original = ddp.ddp.no_sync
    monkeypatch.setattr(ddp.ddp, "no_sync", lambda: (syncs.append(ddp._micro), original())[1])
    torch.manual_seed(3)
    for _ in range(3):
        for _ in range(2):
            batch = {"x": torch.randn(4, 6), "y": torch.randn(4, 3)}
            for engine in (local, ddp):
                engine.backward(engine.forward(batch)["loss"])
        assert local.step()[0] == pytest.approx(ddp.step()[0], rel=1e-6)
    assert syncs == [1, 1, 1]                  # no_sync for the first micro-batch of each step only
    for a, b in zip(local.model.parameters(), ddp.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert ddp.reduce_mean({"loss": 1.5, "acc": 0.25}) == {"loss": 1.5, "acc": 0.25}
    assert ddp.gather({"a": 1}) == [{"a": 1}]
    with torch.no_grad():                      # evaluation does not count as a micro-batch
        ddp.forward({"x": torch.randn(2, 6), "y": torch.randn(2, 3)})
    assert ddp._micro == 0


class TwoRankEngine(LocalEngine):
    """A single process that reports itself as rank 1 of 2 (gather returns two states)."""
    rank, world_size, is_main = 1, 2, False

    def gather(self, obj):
        return ["rank0-state", obj]


def make_trainer(engine):
    sampler = BatchSampler(64, 4, seed=1, rank=engine.rank, world_size=engine.world_size)
    return Trainer(engine, batches=None, sampler=sampler, cfg=TrainerConfig(total_steps=10))


def test_state_holds_every_ranks_rng_and_restore_takes_its_own():
    engine = TwoRankEngine(*engine_parts(), torch.device("cpu"))
    trainer = make_trainer(engine)
    trainer.step = 4
    state = trainer.state()
    assert state["world_size"] == 2 and state["step"] == 4
    assert state["rng_per_rank"][0] == "rank0-state" and state["rng"] == "rank0-state"
    expected = torch.rand(3)                   # what this rank draws next
    torch.rand(5)                              # move on, then restore
    fresh = make_trainer(TwoRankEngine(*engine_parts(), torch.device("cpu")))
    fresh.restore(state)
    assert torch.equal(torch.rand(3), expected) and fresh.step == 4


def test_resuming_with_another_number_of_processes_is_refused():
    state = make_trainer(TwoRankEngine(*engine_parts(), torch.device("cpu"))).state()
    single = make_trainer(LocalEngine(*engine_parts(), torch.device("cpu")))
    with pytest.raises(ConfigError, match="2 process"):
        single.restore(dict(state, step=3))


class OverflowingDeepSpeed:
    """Stands in for deepspeed's engine (fp16 needs a GPU there): the loss scaler overflows on the
    2nd and 3rd optimizer steps, which DeepSpeed skips and counts in ``skipped_steps``."""

    def __init__(self, model):
        self.module, self.skipped_steps, self.boundaries = model, 0, 0
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def __call__(self, batch):
        return self.module(batch)

    def backward(self, loss):
        loss.backward()

    def step(self):
        self.boundaries += 1
        if self.boundaries in (2, 3):
            self.skipped_steps += 1
        else:
            self.optimizer.step()
        self.optimizer.zero_grad()

    def get_global_grad_norm(self):
        return 1.0

    def get_lr(self):
        return [0.1]


def test_fp16_overflow_skips_are_counted_and_logged(tmp_path, caplog):
    from uer.data.sampler import CollatedBatches
    from uer.training.engines.deepspeed_engine import DeepSpeedEngine
    from uer.training.metrics import MetricsLog

    class OneRankDeepSpeedEngine(DeepSpeedEngine):
        def __init__(self, model):      # the real __init__ calls deepspeed.initialize
            self.ds, self.model, self.device = OverflowingDeepSpeed(model), model, torch.device("cpu")
            self.rank, self.world_size, self.is_main = 0, 1, True
            self.accumulation_steps, self._micro = 1, 0

        def reduce_mean(self, values):
            return values

    torch.manual_seed(0)
    data = [{"x": torch.randn(6), "y": torch.randn(3)} for _ in range(64)]

    def collate(items, indices, epoch):
        return {"x": torch.stack([i["x"] for i in items]), "y": torch.stack([i["y"] for i in items]),
                "src": torch.zeros(len(items), 1, dtype=torch.long), "tokens": torch.tensor(len(items))}
    engine = OneRankDeepSpeedEngine(Regression())
    before = [p.detach().clone() for p in engine.model.parameters()]
    metrics = MetricsLog(str(tmp_path / "m.jsonl"))
    trainer = Trainer(engine, CollatedBatches(data, collate), BatchSampler(64, 4, seed=1),
                      TrainerConfig(total_steps=4, report_steps=1), metrics=metrics)
    with caplog.at_level("INFO", logger="uer"):
        trainer.train()
    records = [__import__("json").loads(line) for line in open(tmp_path / "m.jsonl")]
    assert [r["skipped_steps"] for r in records] == [0, 1, 2, 2]
    assert "skipped_steps 2" in caplog.text
    assert engine.skipped_steps == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))
