"""--compile: torch.compile of the model gives the eager losses, step after step, for a tiny BERT
(MLM + SP) and a tiny GPT-2 (LM), through the EngineFactory the CLIs use; bad modes are clear errors.

The parity test compiles two models with inductor: ~100 s of CPU (4.5 min on the shared 2-core
machine), too slow for CI, so it runs only with UER_TEST_COMPILE=1 (as benchmarks/gpu_suite.sh sets)."""

import os

import pytest
import torch

from uer.config import load_config
from uer.errors import ConfigError
from uer.models import build_model
from uer.training.compile import check_compile_works, compile_model
from uer.training.engine_factory import EngineFactory, OptimizerSettings

CPU = torch.device("cpu")


def needs_compile():
    if os.environ.get("UER_TEST_COMPILE") != "1":
        pytest.skip("compiling with inductor takes minutes on a CPU: set UER_TEST_COMPILE=1 to run")
    problem = check_compile_works(CPU)
    if problem is not None:
        pytest.skip(f"torch.compile cannot run on this CPU: {problem}")


def tiny(path: str, **extra):
    config = load_config(path, {"dropout": 0.0, "layers_num": 1, "hidden_size": 32, "emb_size": 32,
                                "feedforward_size": 64, "heads_num": 2, **extra})
    config.vocab_size = 97
    return config


def batches(kind: str, steps: int = 3, batch: int = 2, length: int = 16):
    g = torch.Generator().manual_seed(3)
    out = []
    for _ in range(steps):
        src = torch.randint(5, 97, (batch, length), generator=g)
        seg = torch.ones(batch, length, dtype=torch.long)
        if kind == "bert":
            seg[:, length // 2:] = 2
            positions = torch.stack([torch.randperm(length, generator=g)[:3].sort().values for _ in range(batch)])
            out.append({"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": src.gather(1, positions),
                        "sp_labels": torch.randint(0, 2, (batch,), generator=g)})
        else:
            out.append({"src": src, "seg": seg, "lm_labels": torch.roll(src, -1, 1)})
    return out


def losses(config, data, compile_mode: str):
    torch.manual_seed(0)
    model = build_model(config)
    engine = EngineFactory("local", CPU, 1, OptimizerSettings(learning_rate=1e-3, warmup=0.0, compile=compile_mode)
                           ).build(model, total_steps=len(data))
    names = [n for n, _ in model.named_parameters()]
    seen = []
    for batch in data:
        loss = engine.forward(batch)["loss"]
        engine.backward(loss)
        engine.step()
        seen.append(loss.item())
    return seen, names


@pytest.mark.parametrize("path,kind", [("models/bert/tiny.json", "bert"), ("models/gpt2/small.json", "gpt2")])
def test_compiled_losses_equal_eager(path, kind):
    needs_compile()
    config, data = tiny(path), batches(kind)
    if kind == "gpt2":
        config.max_seq_length = 32
    eager, eager_names = losses(config, data, "")
    compiled, compiled_names = losses(config, data, "default")
    assert compiled_names == eager_names            # compiled in place: checkpoints keep their keys
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-5)
    assert eager[-1] != eager[0]                    # the steps trained: a later loss differs


def test_bad_mode_and_deepspeed_are_clear_errors():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="not a torch.compile mode"):
        compile_model(model, "fastest", CPU)
    with pytest.raises(ConfigError, match="deepspeed"):
        compile_model(model, "default", CPU, engine="deepspeed")


def test_cli_flag_defaults_to_eager_and_bare_flag_means_default():
    from uer.cli.pretrain import build_parser
    assert build_parser().parse_args([]).compile == ""
    assert build_parser().parse_args(["--compile"]).compile == "default"
    assert build_parser().parse_args(["--compile", "max-autotune"]).compile == "max-autotune"
    assert OptimizerSettings.from_namespace(build_parser().parse_args(["--compile"])).compile == "default"
