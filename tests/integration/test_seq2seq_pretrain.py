"""Each encoder-decoder processor (t5, bart, gsg, mt) and prefixlm, through preprocess.py and
pretrain.py with its family's config shrunk to tiny sizes, on real data from ``UER_DATA_DIR``:
the loss falls within a few steps.

Google's Chinese vocabulary has no T5 sentinels, so the t5 case appends [extra_id_0] ..
[extra_id_99] to a copy of it, as UER-py's google_zh_with_sentinel_vocab.txt does."""

import json
import os

import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=2, layers_num=2, decoder_layers_num=2,
            max_seq_length=128, dropout=0.0)


def shrunk(family: str, path) -> str:
    config = json.load(open(os.path.join(ROOT, "models", family)))
    config.update(TINY)
    if "attention_head_size" in config:
        config["attention_head_size"] = 32
    path.write_text(json.dumps(config))
    return str(path)


def head(src: str, dst, lines: int) -> str:
    with open(src, encoding="utf-8") as f:
        dst.write_text("".join(next(f) for _ in range(lines)), encoding="utf-8")
    return str(dst)


def pretrain(tmp_path, dataset, config, vocab_flags, steps=20, lr="3e-3"):
    out = str(tmp_path / "model.bin")
    pretrain_main(["--dataset_path", dataset, "--config_path", config, "--output_model_path", out,
                   "--total_steps", str(steps), "--report_steps", "5", "--batch_size", "8", "--warmup", "0.05",
                   "--learning_rate", lr, "--device", "cpu", *vocab_flags])
    records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
    return records[0]["lm_loss"], records[-1]["lm_loss"]


@pytest.fixture(scope="module")
def zh(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    vocab = os.path.join(data_dir, "vocab", "google_zh_vocab.txt")
    with_sentinels = root / "zh_sentinel_vocab.txt"
    with_sentinels.write_text(open(vocab, encoding="utf-8").read().rstrip("\n") + "\n" +
                              "".join(f"[extra_id_{i}]\n" for i in range(100)), encoding="utf-8")
    corpus = head(os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), root / "zh.txt", 600)
    return {"vocab": vocab, "sentinel_vocab": str(with_sentinels), "corpus": corpus}


@pytest.mark.parametrize("processor, family", [("t5", "t5/small.json"), ("bart", "bart/base.json"),
                                               ("gsg", "pegasus/base.json")])
def test_denoising_objectives_pretrain(zh, tmp_path, processor, family):
    vocab = zh["sentinel_vocab"] if processor == "t5" else zh["vocab"]
    dataset = str(tmp_path / "ds")
    meta = preprocess_main(["--corpus_path", zh["corpus"], "--vocab_path", vocab, "--dataset_path", dataset,
                            "--data_processor", processor, "--seq_length", "64", "--tgt_seq_length", "32"])
    assert meta["instances"] > 50 and meta["processor"] == processor
    # T5 scales the tied output by hidden_size ** -0.5, so its tiny model starts slowly: a larger step.
    lr = "1e-2" if processor == "t5" else "3e-3"
    first, last = pretrain(tmp_path, dataset, shrunk(family, tmp_path / "c.json"), ["--vocab_path", vocab], lr=lr)
    assert last < first - 0.5, (processor, first, last)


def test_mt_pretrains_with_a_separate_target_vocabulary(data_dir, tmp_path):
    corpus = head(os.path.join(data_dir, "mt", "news-commentary-v13-en-zh_sampled.txt"), tmp_path / "mt.txt", 400)
    flags = ["--vocab_path", os.path.join(data_dir, "vocab", "google_uncased_en_vocab.txt"),
             "--tgt_vocab_path", os.path.join(data_dir, "vocab", "google_zh_vocab.txt")]
    dataset = str(tmp_path / "ds")
    meta = preprocess_main(["--corpus_path", corpus, "--dataset_path", dataset, "--data_processor", "mt",
                            "--seq_length", "64", "--tgt_seq_length", "64", *flags])
    assert meta["instances"] == 400 and meta["tgt_tokenizer"]["vocab_size"] == 21128
    config = shrunk("transformer/base.json", tmp_path / "c.json")
    first, last = pretrain(tmp_path, dataset, config, flags)
    assert last < first - 0.5, (first, last)
    with pytest.raises(SystemExit):      # the target vocabulary is required at pretraining too
        pretrain_main(["--dataset_path", dataset, "--config_path", config, "--output_model_path",
                       str(tmp_path / "m2.bin"), "--total_steps", "1", "--vocab_path", flags[1]])


def test_prefixlm_pretrains(data_dir, tmp_path):
    corpus = head(os.path.join(data_dir, "mt", "news-commentary-v13-en-zh_sampled.txt"), tmp_path / "p.txt", 400)
    vocab = ["--vocab_path", os.path.join(data_dir, "vocab", "google_zh_vocab.txt")]
    dataset = str(tmp_path / "ds")
    preprocess_main(["--corpus_path", corpus, "--dataset_path", dataset, "--data_processor", "prefixlm",
                     "--seq_length", "64", *vocab])
    config = {"embedding": ["word", "pos"], "remove_embedding_layernorm": True, "emb_size": 64, "hidden_size": 64,
              "feedforward_size": 128, "heads_num": 2, "layers_num": 2, "max_seq_length": 128, "dropout": 0.0,
              "mask": "causal_with_prefix", "layernorm_positioning": "pre", "target": ["lm"], "tie_weights": True,
              "data_processor": "prefixlm"}
    (tmp_path / "c.json").write_text(json.dumps(config))
    first, last = pretrain(tmp_path, dataset, str(tmp_path / "c.json"), vocab)
    assert last < first - 0.5, (first, last)
