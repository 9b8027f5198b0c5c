"""Bad input files and configs (issue 10, items 6 and 7): each is one `error:` line naming the file
and line (or key) with the fix, exit status 2, nothing written, no traceback."""

import json

import pytest

from uer.cli.tasks import finetune_main
from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.models import build_model

WORDS = [f"w{i}" for i in range(12)]
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 32, "dropout": 0.0, "target": ["mlm"]}


@pytest.fixture
def files(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY), encoding="utf-8")
    rows = [f"{i % 2}\t{WORDS[i % 12]} {WORDS[(i * 5) % 12]}" for i in range(16)]
    dev = tmp_path / "dev.tsv"
    dev.write_text("label\ttext_a\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path, ["--vocab_path", str(vocab), "--config_path", str(config), "--dev_path", str(dev),
                      "--epochs_num", "1", "--batch_size", "8", "--seq_length", "16"]


def one_error_line(capsys, argv, *needles):
    with pytest.raises(SystemExit) as exit_info:
        finetune_main("classification")(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    return err[-1]


def test_a_stray_label_is_refused_instead_of_building_a_hundred_class_model(files, capsys):
    tmp, common = files
    train = tmp / "train.tsv"
    rows = ["0\tw1 w2", "1\tw3", "1\tw4 w5", "99\tw6", "0\tw7"]
    train.write_text("label\ttext_a\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp / "out" / "m.bin"
    one_error_line(capsys, common + ["--train_path", str(train), "--output_model_path", str(out)],
                   str(train), "line 5", "label 99", "2..98", "--labels_num 100")
    assert not (tmp / "out").exists()


def test_gaps_in_labels_are_accepted_when_labels_num_is_given(files, capsys):
    tmp, common = files
    train = tmp / "train.tsv"
    train.write_text("label\ttext_a\n" + "\n".join(f"{(i % 2) * 2}\tw{i % 12} w3" for i in range(16)) + "\n",
                     encoding="utf-8")
    results = finetune_main("classification")(common + ["--train_path", str(train), "--labels_num", "3",
                                                        "--output_model_path", str(tmp / "m.bin")])
    assert json.load(open(str(tmp / "m.bin") + ".task.json"))["labels_num"] == 3
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0


def test_a_file_that_is_not_utf8_names_the_line_and_byte(files, capsys):
    tmp, common = files
    train = tmp / "train.tsv"
    head = "label\ttext_a\n0\tw1 w2\n".encode("utf-8")
    train.write_bytes(head + "1\tw3 ".encode("utf-8") + "中文".encode("gbk") + b"\n")
    line = one_error_line(capsys, common + ["--train_path", str(train), "--output_model_path", str(tmp / "m.bin")],
                          str(train), "line 3", f"byte offset {len(head) + 5}", "not UTF-8")
    assert "iconv" in line
    assert not (tmp / "m.bin").exists()


def test_a_utf8_byte_order_mark_is_accepted(files):
    tmp, common = files
    train = tmp / "train.tsv"
    rows = [f"{i % 2}\tw{i % 12} w1" for i in range(16)]
    train.write_bytes(b"\xef\xbb\xbf" + ("label\ttext_a\n" + "\n".join(rows) + "\n").encode("utf-8"))
    results = finetune_main("classification")(common + ["--train_path", str(train),
                                                        "--output_model_path", str(tmp / "m.bin")])
    assert results["dev"]["examples"] == 16


def test_a_config_that_is_not_utf8(files, capsys):
    tmp, common = files
    bad = tmp / "bad.json"
    bad.write_bytes(b'{\n  "hidden_size": 16,\n  "name": "\xff\xfe"\n}\n')
    train = tmp / "train.tsv"
    train.write_text("label\ttext_a\n0\tw1\n1\tw2\n", encoding="utf-8")
    one_error_line(capsys, common + ["--config_path", str(bad), "--train_path", str(train),
                                     "--output_model_path", str(tmp / "m.bin")], str(bad), "line 3")


@pytest.mark.parametrize("eps", [0.0, -1e-6])
def test_layernorm_eps_must_be_positive(eps):
    with pytest.raises(ConfigError, match="layernorm_eps.*must be > 0"):
        config_from_dict(dict(TINY, layernorm_eps=eps, vocab_size=20))


@pytest.mark.parametrize("key,value", [("hidden_size", 10**9), ("layers_num", 10**7), ("vocab_size", 10**12)])
def test_sizes_that_cannot_be_allocated_are_refused_before_building(key, value):
    settings = dict(TINY, vocab_size=20)
    settings[key] = value
    if key == "hidden_size":
        settings.update(emb_size=value, heads_num=1)
    config = config_from_dict(settings)
    with pytest.raises(ConfigError, match="billion parameters.*more than this machine's"):
        build_model(config)


@pytest.mark.parametrize("reader", ["uer.cli.cloze_test:read_lines", "uer.cli.topn_words_indep:read_words",
                                    "uer.cli.topn_words_dep:read_pairs", "uer.cli.extract_features:read_sentences"])
def test_the_utility_scripts_name_the_line_and_byte_of_a_file_that_is_not_utf8(reader, tmp_path):
    import importlib

    from uer.errors import DataError
    module, function = reader.split(":")
    path = tmp_path / "test.txt"
    path.write_bytes("word\tfirst line\n".encode("utf-8") + "词\t第二行\n".encode("gbk"))
    with pytest.raises(DataError) as info:
        getattr(importlib.import_module(module), function)(str(path))
    assert f"--test_path {path} line 2 (byte offset 16)" in str(info.value), str(info.value)


def test_json_inputs_that_are_not_utf8_name_the_line_and_a_bom_is_accepted(tmp_path):
    from uer.errors import DataError, UerError
    from uer.tasks.multiple_choice import read_json_file
    from uer.utils import read_json_object
    good = '{\n "a": "数据"\n}\n'
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + good.encode("utf-8"))
    assert read_json_file(str(tmp_path / "bom.json"), "--train_path", "C3 JSON") == {"a": "数据"}
    assert read_json_object(str(tmp_path / "bom.json"), "config.json") == {"a": "数据"}
    (tmp_path / "gbk.json").write_bytes(good.encode("gbk"))
    with pytest.raises(DataError, match=r"--train_path .*gbk.json line 2 \(byte offset 9\): not UTF-8"):
        read_json_file(str(tmp_path / "gbk.json"), "--train_path", "C3 JSON")
    with pytest.raises(UerError, match=r"config.json line 2 \(byte offset 9\): not UTF-8"):
        read_json_object(str(tmp_path / "gbk.json"), "config.json")
