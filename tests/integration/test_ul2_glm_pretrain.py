"""The ul2 and glm processors through preprocess.py and pretrain.py with models/ul2/base.json and
models/glm/base.json shrunk to tiny sizes, on CLUECorpusSmall from ``UER_DATA_DIR``: the loss falls
within a few steps.

Google's Chinese vocabulary has neither T5 sentinels nor UL2's mode tokens nor GLM's piece tokens, so
each case appends what it needs to a copy of it (as UER-py's google_zh_with_sentinel_vocab.txt does for
the sentinels)."""

import json
import os

import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=2, layers_num=2, max_seq_length=128,
            dropout=0.0)


def shrunk(family: str, path, **extra) -> str:
    config = json.load(open(os.path.join(ROOT, "models", family)))
    config.update(TINY, **extra)
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def zh(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    base = open(os.path.join(data_dir, "vocab", "google_zh_vocab.txt"), encoding="utf-8").read().rstrip("\n") + "\n"
    ul2 = root / "ul2_vocab.txt"
    ul2.write_text(base + "".join(f"[extra_id_{i}]\n" for i in range(100)) + "[NLU]\n[NLG]\n[S2S]\n", encoding="utf-8")
    glm = root / "glm_vocab.txt"
    glm.write_text(base + "[sop]\n[eop]\n", encoding="utf-8")
    corpus = root / "zh.txt"
    with open(os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), encoding="utf-8") as f:
        corpus.write_text("".join(next(f) for _ in range(600)), encoding="utf-8")
    return {"ul2": str(ul2), "glm": str(glm), "corpus": str(corpus)}


@pytest.mark.parametrize("processor, family, extra, flags, lr", [
    ("ul2", "ul2/base.json", {"decoder_layers_num": 2, "attention_head_size": 32}, ["--denoiser_weights", "2,1,1"],
     "1e-2"),
    ("glm", "glm/base.json", {}, [], "3e-3"),
])
def test_ul2_and_glm_pretrain(zh, tmp_path, processor, family, extra, flags, lr):
    vocab = zh[processor]
    dataset = str(tmp_path / "ds")
    meta = preprocess_main(["--corpus_path", zh["corpus"], "--vocab_path", vocab, "--dataset_path", dataset,
                            "--data_processor", processor, "--seq_length", "64", *flags])
    assert meta["instances"] > 50 and meta["processor"] == processor and meta["noising"]["kind"] == processor
    if processor == "ul2":      # R, X, S weighted 2:1:1, each split within its mode
        assert meta["noising"]["weights"] == pytest.approx([0.25, 0.25] + [0.0625] * 4 + [0.25])
    out = str(tmp_path / "model.bin")
    pretrain_main(["--dataset_path", dataset, "--config_path", shrunk(family, tmp_path / "c.json", **extra),
                   "--output_model_path", out, "--total_steps", "20", "--report_steps", "5", "--batch_size", "8",
                   "--warmup", "0.05", "--learning_rate", lr, "--device", "cpu", "--vocab_path", vocab])
    records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
    first, last = records[0]["lm_loss"], records[-1]["lm_loss"]
    assert last < first - 0.5, (processor, first, last)
