"""A tiny ModernBERT (models/modernbert/base.json shrunk: RoPE with two bases, sliding-window layers between
global ones, GeGLU, pre-norm without biases, 30% masking) pretrained with the ``mlm`` processor through
preprocess.py and pretrain.py on the generated corpus: the mlm loss falls."""

import json
import os

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Window 8 on 64-token sequences: the local layers really see only part of each sequence.
SHRUNK = dict(emb_size=64, hidden_size=64, feedforward_size=96, heads_num=4, layers_num=3, max_seq_length=64,
              local_attention_window=8)


def test_tiny_modernbert_pretrains(tiny_corpus, tmp_path):
    config = json.load(open(os.path.join(ROOT, "models", "modernbert", "base.json")))
    assert config["global_attention_every_n_layers"] == 3 and not config["layernorm_bias"]
    config.update(SHRUNK)
    config_path = tmp_path / "modernbert.json"
    config_path.write_text(json.dumps(config))
    vocab = str(tiny_corpus / "vocab.txt")
    dataset, model = str(tmp_path / "dataset"), str(tmp_path / "modernbert.bin")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--data_processor", "mlm", "--seq_length", "64"])
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(config_path),
                   "--output_model_path", model, "--total_steps", "60", "--report_steps", "10",
                   "--batch_size", "16", "--learning_rate", "3e-3", "--warmup", "0.1", "--device", "cpu"])
    records = [json.loads(line) for line in open(model + ".metrics.jsonl")]
    first, last = records[0]["mlm_loss"], records[-1]["mlm_loss"]
    print(f"mlm_loss {first:.3f} -> {last:.3f}")
    assert last < first - 0.5, (first, last)
    written = json.load(open(model + ".config.json"))
    assert written["local_attention_window"] == 8 and written["local_rope_theta"] == 10000.0
