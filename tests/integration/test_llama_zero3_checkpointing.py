"""The shipped 7B-class ZeRO-3 config (models/deepspeed/zero3_7b_bf16.json) with --activation_checkpointing
on a tiny LLaMA (RoPE, GQA, SwiGLU, RMSNorm; models/llama/tiny.json shrunk), 2 CPU processes.

The run must train exactly what one local process without checkpointing trains: the same losses and
final weights.  This shows, in one launch, that torch's non-reentrant activation checkpointing works
under ZeRO-3 (the recomputed forward gathers the partitioned parameters again) and that every key
of the shipped config is accepted by DeepSpeed.  On the CPU the config runs in fp32 (its bf16 section
dropped, DeepSpeed's CPU accelerator) with the persistence threshold at 0 so that the tiny model is
really partitioned; everything else is the file as shipped.
"""

import json
import os

import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

from test_distributed import curve, launch, needs_deepspeed, weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 4


def tiny_llama(path) -> str:
    config = json.load(open(os.path.join(ROOT, "models", "llama", "tiny.json")))
    config.update(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=4, kv_heads_num=2, layers_num=2,
                  max_seq_length=64, data_processor="llm_pretrain")
    path.write_text(json.dumps(config))
    return str(path)


def cpu_copy_of_shipped_config(path) -> str:
    config = json.load(open(os.path.join(ROOT, "models", "deepspeed", "zero3_7b_bf16.json")))
    assert config.pop("bf16") == {"enabled": True}
    config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    path.write_text(json.dumps(config))
    return str(path)


@needs_deepspeed
def test_zero3_7b_config_with_activation_checkpointing_trains_like_one_process(tiny_corpus, tmp_path):
    config = tiny_llama(tmp_path / "llama.json")
    dataset = str(tmp_path / "dataset")
    vocab = str(tiny_corpus / "vocab.txt")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--data_processor", "llm_pretrain", "--seq_length", "32"])

    def flags(out, *extra):
        return ["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", config,
                "--output_model_path", str(out), "--total_steps", str(STEPS), "--report_steps", "1",
                "--save_checkpoint_steps", str(STEPS), "--learning_rate", "1e-3", "--seed", "5",
                "--num_workers", "0", "--batch_size", "2", *extra]

    reference = tmp_path / "local" / "m.bin"
    reference.parent.mkdir()
    pretrain_main(flags(reference, "--accumulation_steps", "4", "--device", "cpu"))
    run = tmp_path / "zero3" / "m.bin"
    run.parent.mkdir()
    proc = launch(flags(run, "--accumulation_steps", "2", "--activation_checkpointing", "--deepspeed",
                        "--deepspeed_config", cpu_copy_of_shipped_config(tmp_path / "zero3_cpu.json")))
    assert "partitioned across 2 processes" in proc.stdout + proc.stderr

    got, want = curve(run), curve(reference)
    assert [s for s, *_ in got] == list(range(1, STEPS + 1))
    for (step, loss, _, norm), (_, loss_ref, _, norm_ref) in zip(got, want):
        assert loss == pytest.approx(loss_ref, rel=1e-5), (step, loss, loss_ref)
        assert norm == pytest.approx(norm_ref, rel=1e-4), (step, norm, norm_ref)
    assert got[-1][1] < got[0][1]
    final, final_ref = weights(run), weights(reference)
    assert set(final) == set(final_ref)
    assert max((final[k] - final_ref[k]).abs().max().item() for k in final_ref) <= 1e-5
