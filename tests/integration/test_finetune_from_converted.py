"""Every task starts from a converted Hugging Face BertModel: its pooler arrives as head.linear_1,
which the classifier's head uses (as BertForSequenceClassification does) and heads without that
layer (siamese, NER ...) leave aside instead of refusing the checkpoint."""

import json

import pytest
import torch

from uer.cli.tasks import finetune_main
from uer.convert.cli import main as convert_main
from uer.models.weights import read_weights

transformers = pytest.importorskip("transformers")
WORDS = [f"w{i}" for i in range(20)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("converted")
    hf = root / "hf"
    config = transformers.BertConfig(vocab_size=25, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(hf))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf), "--output_model_path", str(root / "m.bin")])
    return root


def write(path, header, rows):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def run(task, converted, tmp_path, header, rows, *extra):
    data = write(tmp_path / "train.tsv", header, rows)
    out = tmp_path / "out.bin"
    finetune_main(task)(["--pretrained_model_path", str(converted / "m.bin"), "--vocab_path",
                         str(converted / "hf" / "vocab.txt"), "--train_path", data, "--dev_path", data,
                         "--output_model_path", str(out), "--epochs_num", "1", "--batch_size", "4",
                         "--seq_length", "16", "--learning_rate", "0", *extra])
    return read_weights(str(out))


def test_the_classifier_starts_from_the_converted_pooler(converted, tmp_path):
    pooler = {k: v for k, v in read_weights(str(converted / "m.bin")).items() if k.startswith("head.")}
    assert sorted(pooler) == ["head.linear_1.bias", "head.linear_1.weight"]
    saved = run("classification", converted, tmp_path, "label\ttext_a", [f"{i % 2}\tw{i} w{i + 1}" for i in range(8)])
    assert all(torch.equal(saved[k], v) for k, v in pooler.items())          # lr 0: still the pooler


def test_siamese_and_ner_leave_the_pooler_aside(converted, tmp_path):
    (tmp_path / "s").mkdir()
    rows = [f"{i % 2}\tw{i} w{i + 1}\tw{i + 2}" for i in range(8)]
    saved = run("siamese", converted, tmp_path / "s", "label\ttext_a\ttext_b", rows)
    assert not any(k.startswith("head.linear_1") for k in saved)
    (tmp_path / "n").mkdir()
    saved = run("ner", converted, tmp_path / "n", "text_a\tlabel", [f"w{i} w{i + 1}\tB-X O" for i in range(8)])
    assert json.load(open(str(tmp_path / "n" / "out.bin") + ".task.json"))["task"] == "ner"
