"""Bad input: one clear error line (exit status 2, no traceback) and no partial output."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(script, *args, cwd=None):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)
    return proc.returncode, proc.stderr


def assert_clean_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for needle in needles:
        assert needle in last, (needle, last)


@pytest.fixture(scope="module")
def built(tiny_corpus, tmp_path_factory):
    """A dataset and a pretrained tiny model to break things against."""
    root = tmp_path_factory.mktemp("built")
    vocab = tiny_corpus / "vocab.txt"
    ds = root / "dataset"
    code, err = run("preprocess.py", "--corpus_path", tiny_corpus / "corpus.txt", "--vocab_path", vocab,
                    "--dataset_path", ds, "--seq_length", "48")
    assert code == 0, err
    model = root / "m.bin"
    code, err = run("pretrain.py", "--dataset_path", ds, "--vocab_path", vocab, "--config_path",
                    tiny_corpus / "tiny_bert.json", "--output_model_path", model, "--total_steps", "2",
                    "--batch_size", "4")
    assert code == 0, err
    return {"vocab": vocab, "dataset": ds, "model": model, "config": tiny_corpus / "tiny_bert.json"}


def pretrain_args(built, out, config=None, vocab=None, dataset=None):
    return ["--dataset_path", dataset or built["dataset"], "--vocab_path", vocab or built["vocab"],
            "--config_path", config or built["config"], "--output_model_path", out, "--total_steps", "2",
            "--batch_size", "4"]


def test_malformed_json_config(built, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "hidden_size": 32,\n  "heads_num": 2,\n}\n')
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin", config=bad))
    assert_clean_error(code, err, str(bad), "line 4")
    assert not (tmp_path / "out").exists()


def test_unknown_module_name_lists_the_valid_ones(built, tmp_path):
    cfg = json.loads(open(built["config"]).read())
    cfg["encoder"] = "transfomer"
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps(cfg))
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin", config=bad))
    assert_clean_error(code, err, "unknown encoder 'transfomer'", "key 'encoder'", "Did you mean 'transformer'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [None, "", "\n\n  \n"], ids=["missing", "empty", "blank"])
def test_missing_or_empty_corpus(built, tmp_path, content):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_text(content)
    code, err = run("preprocess.py", "--corpus_path", corpus, "--vocab_path", built["vocab"],
                    "--dataset_path", tmp_path / "ds")
    assert_clean_error(code, err, str(corpus))
    assert sorted(os.listdir(tmp_path)) == (["corpus.txt"] if content is not None else [])


def test_vocab_without_special_tokens(tiny_corpus, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nthe\ncat\n")
    code, err = run("preprocess.py", "--corpus_path", tiny_corpus / "corpus.txt", "--vocab_path", vocab,
                    "--dataset_path", tmp_path / "ds")
    assert_clean_error(code, err, str(vocab), "[CLS]", "[MASK]")
    assert not (tmp_path / "ds").exists()


def test_dataset_built_for_another_vocabulary(built, tmp_path):
    other = tmp_path / "vocab.txt"
    other.write_text(open(built["vocab"]).read() + "extra_token\n")
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin", vocab=other))
    assert_clean_error(code, err, "different tokenizer")
    assert not (tmp_path / "out").exists()


def test_dataset_built_for_another_sequence_length(built, tmp_path):
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin"), "--seq_length", "128")
    assert_clean_error(code, err, "--seq_length 128", "48")
    cfg = json.loads(open(built["config"]).read())
    cfg["max_seq_length"] = 32
    small = tmp_path / "small.json"
    small.write_text(json.dumps(cfg))
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin", config=small))
    assert_clean_error(code, err, "max_seq_length is 32")
    assert not (tmp_path / "out").exists()


def test_dataset_of_another_processor(built, tmp_path):
    code, err = run("pretrain.py", *pretrain_args(built, tmp_path / "out" / "m.bin"), "--data_processor", "mlm")
    assert_clean_error(code, err, "'mlm'", "'bert'")


def write_tsv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("bad_line,needle", [
    ("1\tthe food was great\textra column", "line 3: 3 tab-separated columns"),
    ("7\tthe food was great", "line 3: label 7 is outside 0..1"),
    ("positive\tthe food was great", "line 3: label 'positive' is not an integer"),
])
def test_bad_tsv_lines_are_reported_with_their_line_number(built, tmp_path, bad_line, needle):
    train = write_tsv(tmp_path / "train.tsv", ["label\ttext_a", "0\tthe food was awful", "1\tthe food was great"])
    dev = write_tsv(tmp_path / "dev.tsv", ["label\ttext_a", "0\tthe room was dull", bad_line])
    out = tmp_path / "out" / "cls.bin"
    code, err = run("finetune/run_classifier.py", "--pretrained_model_path", built["model"], "--vocab_path",
                    built["vocab"], "--train_path", train, "--dev_path", dev, "--output_model_path", out,
                    "--labels_num", "2")
    assert_clean_error(code, err, str(dev), needle)
    assert not (tmp_path / "out").exists()


def test_tsv_without_header_columns(built, tmp_path):
    train = write_tsv(tmp_path / "train.tsv", ["0\tthe food was awful", "1\tthe food was great"])
    code, err = run("finetune/run_classifier.py", "--pretrained_model_path", built["model"], "--vocab_path",
                    built["vocab"], "--train_path", train, "--dev_path", train, "--output_model_path",
                    tmp_path / "cls.bin")
    assert_clean_error(code, err, "line 1", "text_a")


def test_checkpoint_that_does_not_match_the_config(built, tmp_path):
    cfg = json.loads(open(built["config"]).read())
    cfg.update(hidden_size=64, emb_size=64)
    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps(cfg))
    train = write_tsv(tmp_path / "train.tsv", ["label\ttext_a", "0\tthe food was awful", "1\tthe food was great"])
    out = tmp_path / "out" / "cls.bin"
    code, err = run("finetune/run_classifier.py", "--pretrained_model_path", built["model"], "--vocab_path",
                    built["vocab"], "--config_path", bigger, "--train_path", train, "--dev_path", train,
                    "--output_model_path", out)
    assert_clean_error(code, err, str(built["model"]), "shape mismatches", "embedding.word.embedding.weight")
    assert not (tmp_path / "out").exists()


def test_corrupt_checkpoint(built, tmp_path):
    broken = tmp_path / "broken.bin"
    broken.write_bytes(open(built["model"], "rb").read()[:1000])
    train = write_tsv(tmp_path / "train.tsv", ["label\ttext_a", "0\tthe food was awful", "1\tthe food was great"])
    code, err = run("finetune/run_classifier.py", "--pretrained_model_path", broken, "--vocab_path",
                    built["vocab"], "--config_path", built["config"], "--train_path", train, "--dev_path", train,
                    "--output_model_path", tmp_path / "out" / "cls.bin")
    assert_clean_error(code, err, str(broken))


def test_inference_with_the_wrong_labels_num(built, tmp_path):
    train = write_tsv(tmp_path / "train.tsv", ["label\ttext_a", "0\tthe food was awful", "1\tthe food was great"])
    model = tmp_path / "cls.bin"
    code, err = run("finetune/run_classifier.py", "--pretrained_model_path", built["model"], "--vocab_path",
                    built["vocab"], "--train_path", train, "--dev_path", train, "--output_model_path", model,
                    "--epochs_num", "1")
    assert code == 0, err
    code, err = run("inference/run_classifier_infer.py", "--load_model_path", model, "--vocab_path", built["vocab"],
                    "--test_path", train, "--prediction_path", tmp_path / "p.tsv", "--labels_num", "3")
    assert_clean_error(code, err, "--labels_num 3", "fine-tuned with 2 labels")
    assert not (tmp_path / "p.tsv").exists()
