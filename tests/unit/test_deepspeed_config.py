"""Reconciling a DeepSpeed config with pretrain.py's flags (no DeepSpeed needed): missing or "auto"
values are filled from the flags, values the flags leave alone are adopted, contradictions are
errors naming both values; every shipped config resolves."""

import glob
import json
import os

import pytest

from uer.cli.pretrain import build_parser, given_flags
from uer.errors import ConfigError
from uer.training.engines.deepspeed_config import (precision_of, read_deepspeed_config,
                                                   resolve_deepspeed_config, zero_stage)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "models", "deepspeed", "*.json")))


def parse(*flags):
    argv = ["--deepspeed", *flags]
    args = build_parser().parse_args(argv)
    given = given_flags(argv)
    if args.fp16:
        args.precision = "fp16"
        given.add("precision")
    return args, given


def resolve(config, *flags, world_size=2):
    args, given = parse(*flags)
    resolved, own = resolve_deepspeed_config(config, args, given, world_size, source="ds.json")
    return resolved, own, args


def test_given_flags_are_only_those_on_the_command_line():
    assert given_flags(["--batch_size", "8", "--fp16"]) == {"batch_size", "fp16"}
    assert given_flags([]) == set()


def test_missing_and_auto_values_are_filled_from_the_flags():
    config = {"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}}
    resolved, own, args = resolve(config, "--batch_size", "8", "--accumulation_steps", "3",
                                  "--max_grad_norm", "0.5")
    assert resolved["train_micro_batch_size_per_gpu"] == 8
    assert resolved["gradient_accumulation_steps"] == 3
    assert resolved["gradient_clipping"] == 0.5
    assert resolved["train_batch_size"] == 8 * 3 * 2
    assert own and resolved["zero_allow_untested_optimizer"] is True   # our AdamW goes in
    assert "optimizer" not in resolved and "bf16" not in resolved and "fp16" not in resolved
    assert config == {"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}}  # not mutated


def test_values_the_flags_leave_alone_are_adopted():
    config = {"train_micro_batch_size_per_gpu": 16, "gradient_accumulation_steps": 2, "gradient_clipping": 2.0,
              "bf16": {"enabled": True},
              "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.98], "eps": 1e-8,
                                                        "weight_decay": 0.1}}}
    resolved, own, args = resolve(config)
    assert (args.batch_size, args.accumulation_steps, args.max_grad_norm) == (16, 2, 2.0)
    assert (args.learning_rate, args.beta1, args.beta2, args.adam_epsilon, args.weight_decay) == \
        (3e-4, 0.9, 0.98, 1e-8, 0.1)
    assert args.precision == "bf16" and not own


@pytest.mark.parametrize("flags,config,named", [
    (["--batch_size", "8"], {"train_micro_batch_size_per_gpu": 16}, ["--batch_size 8", "train_micro_batch_size_per_gpu = 16"]),
    (["--accumulation_steps", "2"], {"gradient_accumulation_steps": 4}, ["--accumulation_steps 2", "= 4"]),
    (["--max_grad_norm", "1.0"], {"gradient_clipping": 0.5}, ["--max_grad_norm 1.0", "gradient_clipping = 0.5"]),
    (["--learning_rate", "1e-4"], {"optimizer": {"type": "AdamW", "params": {"lr": 5e-4}}},
     ["--learning_rate 0.0001", "optimizer.params.lr = 0.0005"]),
    (["--beta2", "0.999"], {"optimizer": {"type": "AdamW", "params": {"betas": [0.9, 0.98]}}},
     ["--beta1 0.9 --beta2 0.999", "[0.9, 0.98]"]),
    (["--precision", "fp32"], {"bf16": {"enabled": True}}, ["--precision fp32", "bf16"]),
    (["--fp16"], {"bf16": {"enabled": True}}, ["--precision fp16", "bf16"]),
], ids=["batch", "accumulation", "clipping", "lr", "betas", "precision", "fp16-flag"])
def test_a_contradiction_is_an_error_naming_both_values(flags, config, named):
    with pytest.raises(ConfigError) as e:
        resolve(config, *flags)
    for text in named + ["ds.json"]:
        assert text in str(e.value), str(e.value)


def test_equal_values_are_not_a_contradiction():
    resolved, _, args = resolve({"train_micro_batch_size_per_gpu": 8, "gradient_clipping": 1},
                                "--batch_size", "8", "--max_grad_norm", "1.0")
    assert resolved["train_micro_batch_size_per_gpu"] == 8 and args.batch_size == 8


def test_train_batch_size_must_be_the_global_batch():
    with pytest.raises(ConfigError, match="train_batch_size = 100 .* = 32"):
        resolve({"train_batch_size": 100}, "--batch_size", "4", "--accumulation_steps", "2", world_size=4)
    resolved, _, _ = resolve({"train_batch_size": 32}, "--batch_size", "4", "--accumulation_steps", "2",
                             world_size=4)
    assert resolved["train_batch_size"] == 32


def test_a_deepspeed_scheduler_is_refused():
    with pytest.raises(ConfigError, match="--scheduler"):
        resolve({"scheduler": {"type": "WarmupLR"}})


def test_an_optimizer_other_than_adamw_is_refused():
    with pytest.raises(ConfigError, match="AdamW"):
        resolve({"optimizer": {"type": "Lamb", "params": {}}})
    with pytest.raises(ConfigError, match="AdamW"):
        resolve({"optimizer": {"type": "Adam", "params": {"adam_w_mode": False}}})


def test_precision_flag_fills_an_undecided_config():
    resolved, _, args = resolve({}, "--precision", "bf16")
    assert resolved["bf16"] == {"enabled": True} and args.precision == "bf16"
    resolved, _, args = resolve({"fp16": {"enabled": "auto", "initial_scale_power": 12}}, "--fp16")
    assert resolved["fp16"] == {"enabled": True, "initial_scale_power": 12} and precision_of(resolved) == "fp16"


def test_optimizer_offload_gets_deepspeeds_adamw_from_the_flags():
    config = {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}
    resolved, own, _ = resolve(config, "--learning_rate", "2e-4", "--weight_decay", "0.05")
    assert not own
    assert resolved["optimizer"] == {"type": "AdamW", "params": {"lr": 2e-4, "betas": [0.9, 0.999], "eps": 1e-6,
                                                                 "weight_decay": 0.05}}


def test_an_auto_without_a_flag_is_refused():
    with pytest.raises(ConfigError, match="zero_optimization.reduce_bucket_size"):
        resolve({"zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}})


def test_unreadable_config_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_deepspeed_config(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"train_micro_batch_size_per_gpu": 4,\n  oops}')
    with pytest.raises(ConfigError, match="line 2"):
        read_deepspeed_config(str(bad))


def test_the_shipped_configs_are_all_there():
    names = {os.path.basename(p) for p in SHIPPED}
    for stem in ("zero1", "zero2", "zero2_offload", "zero3", "zero3_offload"):
        assert {stem + ".json", stem + "_fp16.json"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_every_shipped_config_resolves_from_the_flags(path):
    config = read_deepspeed_config(path)
    resolved, own, args = resolve(config, "--batch_size", "4", "--learning_rate", "2e-4")
    name = os.path.basename(path)
    assert resolved["train_micro_batch_size_per_gpu"] == 4 and resolved["train_batch_size"] == 8
    assert args.precision == ("fp16" if name.endswith("_fp16.json") else "bf16")
    assert zero_stage(resolved) == int(name[4])
    assert own == ("offload" not in name)            # offload needs DeepSpeed's CPU Adam
    if not own:
        assert resolved["optimizer"]["params"]["lr"] == 2e-4
    assert "auto" not in json.dumps(resolved)


def test_a_deepspeed_activation_checkpointing_section_points_at_our_flag(caplog):
    config = {"zero_optimization": {"stage": 3}, "activation_checkpointing": {"partition_activations": True}}
    with caplog.at_level("WARNING", logger="uer"):
        resolve(config)
    assert "--activation_checkpointing" in caplog.text and "NOT recomputed" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="uer"):
        resolve(config, "--activation_checkpointing")
    assert "activation_checkpointing" not in caplog.text
