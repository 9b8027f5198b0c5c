"""GPT-2 end to end with the byte-level BPE tokenizer: --tokenizer bpe --vocab_path vocab.json
--merges_path merges.txt through preprocess (lm processor) and pretrain (causal LM)."""

import json

import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

tokenizers = pytest.importorskip("tokenizers")   # only to train the tiny BPE model for the test
pytest.importorskip("regex")


def test_gpt2_pretraining_with_byte_level_bpe(tiny_corpus, tmp_path):
    lines = [l for l in open(tiny_corpus / "corpus.txt", encoding="utf-8") if l.strip()]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(tmp_path))
    corpus = tmp_path / "docs.txt"           # lm processor: one document per line
    corpus.write_text("".join(lines[i] .rstrip("\n") + " " + lines[i + 1] for i in range(0, len(lines) - 1, 2)))
    flags = ["--tokenizer", "bpe", "--vocab_path", str(tmp_path / "vocab.json"),
             "--merges_path", str(tmp_path / "merges.txt")]
    meta = preprocess_main(["--corpus_path", str(corpus), "--dataset_path", str(tmp_path / "ds"),
                            "--data_processor", "lm", "--seq_length", "32", *flags])
    assert meta["tokenizer"]["name"] == "bpe" and meta["instances"] > 50
    config = {"embedding": ["word", "pos"], "remove_embedding_layernorm": True, "emb_size": 32, "hidden_size": 32,
              "feedforward_size": 64, "heads_num": 2, "layers_num": 2, "max_seq_length": 64, "hidden_act": "gelu_fast",
              "mask": "causal", "layernorm_positioning": "pre", "layernorm_eps": 1e-5, "target": ["lm"],
              "data_processor": "lm"}
    (tmp_path / "gpt2.json").write_text(json.dumps(config))
    out = str(tmp_path / "gpt2.bin")
    pretrain_main(["--dataset_path", str(tmp_path / "ds"), "--config_path", str(tmp_path / "gpt2.json"),
                   "--output_model_path", out, "--total_steps", "30", "--report_steps", "10", "--batch_size", "8",
                   "--learning_rate", "3e-3", *flags])
    records = [json.loads(l) for l in open(out + ".metrics.jsonl")]
    assert records[-1]["lm_loss"] < records[0]["lm_loss"] - 0.5
    with pytest.raises(SystemExit):      # the merges file is required
        preprocess_main(["--corpus_path", str(corpus), "--dataset_path", str(tmp_path / "ds2"),
                         "--data_processor", "lm", "--tokenizer", "bpe", "--vocab_path", str(tmp_path / "vocab.json")])
    assert not (tmp_path / "ds2").exists()
