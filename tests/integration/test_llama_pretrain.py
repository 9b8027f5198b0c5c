"""A tiny LLaMA (models/llama/tiny.json shrunk: RoPE, grouped-query attention, SwiGLU, RMSNorm, no
biases, untied output) and a tiny GPT-2 (models/gpt2/small.json shrunk) pretrained with the ``lm``
processor on real Chinese text from ``UER_DATA_DIR`` through preprocess.py and pretrain.py: the loss
falls; then scripts/generate_lm.py continues three prompts, one output line each, greedy and the same
with and without the KV cache."""

import json
import os
from collections import Counter

import pytest

from uer.cli.generate_lm import main as generate_lm_main
from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHRUNK = {"llama/tiny.json": dict(emb_size=64, hidden_size=64, feedforward_size=176, heads_num=4, kv_heads_num=2,
                                  layers_num=2, max_seq_length=128),
          "gpt2/small.json": dict(emb_size=64, hidden_size=64, feedforward_size=256, heads_num=4, layers_num=2,
                                  max_seq_length=128, dropout=0.0)}
PROMPTS = ["兰州公交集团", "记者从", "中国"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_char_vocab(corpus, path) -> str:
    """The corpus's characters seen at least twice: ~2000 rows instead of Google's 21128 keep the output
    layer (most of a tiny model's time) small enough for a test of seconds."""
    counts = Counter(ch for line in open(corpus, encoding="utf-8") for ch in line if not ch.isspace())
    chars = sorted(ch for ch, n in counts.items() if n >= 2)
    path.write_text("\n".join(SPECIALS + chars) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("shipped", sorted(SHRUNK))
def test_tiny_decoder_only_lm_pretrains_and_generates(data_dir, tmp_path, shipped):
    config = json.load(open(os.path.join(ROOT, "models", *shipped.split("/"))))
    if shipped.startswith("llama"):
        assert config["rotary_position_embedding"] and config["feed_forward"] == "gated"
    config.update(SHRUNK[shipped])
    config_path = tmp_path / "llama.json"
    config_path.write_text(json.dumps(config))
    corpus = tmp_path / "corpus.txt"
    with open(os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_sampled.txt"), encoding="utf-8") as f:
        corpus.write_text("".join(next(f) for _ in range(200)), encoding="utf-8")
    vocab = write_char_vocab(corpus, tmp_path / "vocab.txt")
    dataset = str(tmp_path / "ds")
    meta = preprocess_main(["--corpus_path", str(corpus), "--vocab_path", vocab, "--dataset_path", dataset,
                            "--data_processor", "lm", "--seq_length", "64"])
    assert meta["instances"] > 100
    model = str(tmp_path / "llama.bin")
    pretrain_main(["--dataset_path", dataset, "--config_path", str(config_path), "--vocab_path", vocab,
                   "--output_model_path", model, "--total_steps", "25", "--report_steps", "5", "--batch_size", "8",
                   "--warmup", "0.1", "--learning_rate", "5e-3", "--device", "cpu"])
    records = [json.loads(line) for line in open(model + ".metrics.jsonl")]
    first, last = records[0]["lm_loss"], records[-1]["lm_loss"]
    print(f"lm_loss {first:.3f} -> {last:.3f}")
    assert last < first - 0.8, (first, last)

    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")

    def generate(out, *extra):
        return generate_lm_main(["--load_model_path", model, "--config_path", str(config_path), "--vocab_path", vocab,
                                 "--test_path", str(tmp_path / "prompts.txt"), "--prediction_path", str(tmp_path / out),
                                 "--seq_length", "40", "--top_k", "1", "--max_new_tokens", "12", *extra])

    lines = generate("out.txt", "--batch_size", "3")
    written = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert written[:-1] == lines and len(lines) == len(PROMPTS)
    for prompt, line in zip(PROMPTS, lines):
        assert line.replace(" ", "").startswith(prompt) and len(line.replace(" ", "")) > len(prompt), (prompt, line)
    assert generate("alone.txt", "--batch_size", "1", "--no_cache") == lines
