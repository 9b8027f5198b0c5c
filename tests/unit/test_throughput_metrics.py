"""Measurement in every run (issue 14, item 1): real-token counting, the FLOP convention against
hand counts, the per-device peak table, and what the log line and the metrics file carry."""

import json
import logging
import os

import pytest
import torch

from uer.config import load_config
from uer.errors import ConfigError
from uer.models import build_model
from uer.training import device as device_module
from uer.training.device import PEAK_ENV, peak_for_name, peak_tflops
from uer.training.flops import BatchFlops, batch_tokens
from uer.training.metrics import RunningMeans, Throughput, peak_memory_mib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"layers_num": 2, "hidden_size": 32, "emb_size": 32, "feedforward_size": 64, "heads_num": 2,
        "max_seq_length": 64}
VOCAB = 200            # padded to 256 output rows


def shrunk(path, **extra):
    config = load_config(os.path.join(ROOT, path), {**TINY, **extra})
    config.vocab_size = VOCAB
    return config


# -- FLOPs: 6 x matrix parameters + 12 x layers x hidden x seq per token ---------------------------

def test_bert_flops_match_a_hand_count():
    model = build_model(shrunk("models/bert/small.json"))
    per_layer = 4 * 32 * 32 + 2 * 32 * 64                       # q k v o + the two FFN matrices
    mlm = 6 * (32 * 32 + 32 * 256) * 0.15                       # transform + tied output, masked 15 %
    per_token = 6 * 2 * per_layer + 12 * 2 * 32 * 16 + mlm      # seq 16; sp: one prediction a sequence
    flops = BatchFlops.of_model(model, 0.15)
    assert flops(40, 16) == pytest.approx(40 * per_token)
    assert flops(torch.tensor(40), 16).item() == pytest.approx(40 * per_token)   # the trainer's CPU counts
    assert model.flops_per_token(16) == pytest.approx(per_token)


def test_gpt2_flops_match_a_hand_count():
    model = build_model(shrunk("models/gpt2/small.json"))
    per_layer = 4 * 32 * 32 + 2 * 32 * 64
    head = 6 * 32 * 256                                          # the tied LM head at every position
    per_token = 6 * 2 * per_layer + 12 * 2 * 32 * 48 + head
    assert BatchFlops.of_model(model)(100, 48) == pytest.approx(100 * per_token)


def test_encoder_decoder_flops_count_each_side_with_its_own_tokens_and_lengths():
    model = build_model(shrunk("models/t5/small.json", decoder_layers_num=2, attention_head_size=16))
    encoder_layer = 4 * 32 * 32 + 2 * 32 * 64
    decoder_layer = 4 * 32 * 32 + 4 * 32 * 32 + 2 * 32 * 64     # self-attention, cross-attention, FFN
    S, T = 24, 8
    per_source_token = 6 * 2 * encoder_layer + 12 * 2 * 32 * S
    per_target_token = 6 * 2 * decoder_layer + 12 * 2 * 32 * (T + S) + 6 * 32 * 256
    flops = BatchFlops.of_model(model)
    assert flops(50, S, 15, T) == pytest.approx(50 * per_source_token + 15 * per_target_token)
    # the old single figure (target as long as the source) is still what flops_per_token reports
    assert model.flops_per_token(S) == pytest.approx(
        6 * 2 * (encoder_layer + decoder_layer) + 12 * 2 * 32 * S * 3 + 6 * 32 * 256)


def test_real_tokens_are_counted_on_both_sides_of_an_encoder_decoder_batch():
    tgt_seg = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    batch = {"tokens": torch.tensor(11), "src": torch.zeros(2, 6, dtype=torch.long), "tgt_seg": tgt_seg}
    src_tokens, tgt_tokens = batch_tokens(batch)
    assert int(src_tokens) == 11 and int(tgt_tokens) == 5 and "tokens" not in batch
    assert batch_tokens({"tokens": torch.tensor(9)}) == (torch.tensor(9), 0)


def test_throughput_adds_tensor_counts_and_reads_them_at_the_lap():
    speed = Throughput()
    for n in (3, 4, 5):
        speed.add_tokens(torch.tensor(n))
        speed.add_flops(torch.tensor(n, dtype=torch.float64) * 1e12)
    lap = speed.lap()
    assert lap["tflops"] / lap["tokens_per_s"] == pytest.approx(1.0)
    assert speed.tokens == 0 and speed.flops == 0


def test_running_means_of_tensors_and_numbers():
    means = RunningMeans()
    means.add({"loss": torch.tensor(2.0), "grad_norm": 1.0})
    means.add({"loss": torch.tensor(4.0), "grad_norm": torch.tensor(float("inf"))})
    assert means.means() == {"loss": 3.0, "grad_norm": float("inf")}


# -- the peak table ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, precision, tf32, peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", False, 989.4),          # SXM
    ("NVIDIA H100 PCIe", "bf16", False, 756.5),
    ("NVIDIA H100 PCIe", "fp32", True, 378.0),
    ("NVIDIA H200", "fp16", False, 989.4),
    ("NVIDIA A100-SXM4-40GB", "bf16", False, 312.0),
    ("NVIDIA A100-SXM4-80GB", "fp32", False, 19.5),
    ("NVIDIA A100 80GB PCIe", "fp32", True, 156.0),
    ("NVIDIA L4", "bf16", False, 121.0),
    ("NVIDIA L40S", "bf16", False, 362.0),                   # not the L4
    ("NVIDIA A10G", "bf16", False, 125.0),
    ("NVIDIA A10G", "fp32", False, 31.2),
])
def test_peak_table_by_device_name(name, precision, tf32, peak):
    assert peak_for_name(name, precision, tf32) == peak


def test_unknown_devices_have_no_peak_and_an_override_wins(monkeypatch):
    monkeypatch.delenv(PEAK_ENV, raising=False)
    assert peak_for_name("Some Future Accelerator") is None
    assert peak_tflops(torch.device("cpu"), "fp32") is None                 # MFU omitted, not invented
    assert peak_tflops(torch.device("cpu"), "fp32", override=2.5) == 2.5
    monkeypatch.setattr(device_module.torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_tflops(torch.device("cuda"), "bf16") == 756.5
    monkeypatch.setenv(PEAK_ENV, "400")
    assert peak_tflops(torch.device("cuda"), "bf16") == 400.0                # the environment wins over the table
    assert peak_tflops(torch.device("cuda"), "bf16", override=300.0) == 300.0   # and the flag over both
    monkeypatch.setenv(PEAK_ENV, "fast")
    with pytest.raises(ConfigError, match=PEAK_ENV):
        peak_tflops(torch.device("cpu"))
    with pytest.raises(ConfigError, match="--peak_tflops"):
        peak_tflops(torch.device("cpu"), override=-1.0)


def test_peak_memory_is_reported_on_the_cpu():
    before = peak_memory_mib(torch.device("cpu"))
    block = torch.ones(64 * 2 ** 20 // 4)          # 64 MiB touched
    assert peak_memory_mib(torch.device("cpu")) >= max(before, 64) and block.sum() > 0


# -- the log line and the metrics file --------------------------------------------------------------

def _train_and_read(tmp_path, caplog, **cfg):
    from tests.unit.test_step_syncs import bert_trainer
    trainer, engine = bert_trainer(tmp_path, steps=2, report_steps=1, accumulation=1, **cfg)
    with caplog.at_level(logging.INFO, logger="uer"):
        trainer.train()
    records = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    return trainer, records, lines


def test_log_line_and_metrics_file_carry_tokens_tflops_memory_and_mfu_na_on_a_cpu(tmp_path, caplog):
    trainer, records, lines = _train_and_read(tmp_path, caplog)
    assert len(records) == 2 and len(lines) == 2
    for record, line in zip(records, lines):
        assert record["tokens_per_s"] > 0 and record["tflops_per_device"] > 0 and record["peak_mem_mib"] > 0
        assert "mfu" not in record                          # no peak known: absent, as before (JSON has no n/a)
        for key in ("tokens_per_s", "tflops_per_device", "peak_mem_mib", "mfu n/a"):
            assert key in line, line
        # every batch is 4 rows of 10 or 11 real tokens at length 12: FLOPs / real token is the
        # per-token cost at seq 12, so tokens and FLOPs were counted over the same tokens
        per_token = trainer.batch_flops(1, 12)
        assert record["tflops_per_device"] * 1e12 / record["tokens_per_s"] == pytest.approx(per_token, rel=1e-6)
    assert {"loss", "mlm_acc", "sp_acc", "grad_norm", "lr", "skipped_steps"} <= set(records[0])   # as before


def test_mfu_is_tflops_over_the_peak_when_the_peak_is_known(tmp_path, caplog):
    _, records, lines = _train_and_read(tmp_path, caplog, peak_tflops=0.5)
    for record, line in zip(records, lines):
        assert record["mfu"] == pytest.approx(record["tflops_per_device"] / 0.5)
        assert " mfu " in line and "mfu n/a" not in line


def test_pretrain_py_logs_them_and_takes_the_peak_from_the_environment(tiny_corpus, tmp_path, caplog, monkeypatch):
    """The CLI wiring: pretrain.py's log line and metrics file; UER_PEAK_TFLOPS gives a CPU run an MFU."""
    from uer.cli.preprocess import main as preprocess_main
    from uer.cli.pretrain import main as pretrain_main
    dataset = str(tmp_path / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", dataset, "--seq_length", "32"])

    def run(name):
        out = str(tmp_path / name / "m.bin")
        with caplog.at_level(logging.INFO, logger="uer"):
            pretrain_main(["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"),
                           "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", out,
                           "--total_steps", "2", "--report_steps", "1", "--batch_size", "4", "--num_workers", "0"])
        return [json.loads(line) for line in open(out + ".metrics.jsonl")]
    monkeypatch.delenv(PEAK_ENV, raising=False)
    records = run("cpu")
    assert all(r["tflops_per_device"] > 0 and r["peak_mem_mib"] > 0 and "mfu" not in r for r in records)
    assert "mfu n/a" in caplog.text and "peak_mem_mib" in caplog.text
    monkeypatch.setenv(PEAK_ENV, "0.25")
    records = run("given")
    assert all(r["mfu"] == pytest.approx(r["tflops_per_device"] / 0.25) for r in records)
