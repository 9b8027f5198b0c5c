"""An output path that is an input path (issue 10, item 3): every script refuses it with one `error:`
line and exit status 2 before reading or writing anything, so the input stays byte-identical.  The
inputs hold arbitrary bytes: a script that read them first would fail differently."""

import os

import pytest

from uer.cli import (average_models, build_vocab, cloze_test, consolidate, diff_vocab, dynamic_vocab_adapter,
                     extract_embeddings, extract_features, preprocess, pretrain, topn_words_dep, topn_words_indep)
from uer.cli.tasks import finetune_main, infer_main
from uer.convert import cli as convert


@pytest.fixture
def place(tmp_path):
    """Input files with distinctive contents, and a snapshot of every file under tmp_path."""
    names = ["model.bin", "model.bin.config.json", "vocab.txt", "train.tsv", "test.tsv", "config.json",
             "corpus.txt", "other.bin", "hf/config.json", "hf/pytorch_model.bin", "hf/vocab.txt",
             "dataset/meta.json", "run.bin.deepspeed/latest", "run.bin.deepspeed/step1/x.pt"]
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"input {name}\n".encode() + os.urandom(16))
    return tmp_path


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(entry, argv, root, capsys, *needles):
    before = snapshot(root)
    with pytest.raises(SystemExit) as info:
        entry([str(a) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert snapshot(root) == before          # nothing read-and-rewritten, nothing new written
    return err[0]


def test_pretrain_output_over_each_input(place, capsys):
    base = ["--dataset_path", place / "dataset", "--vocab_path", place / "vocab.txt", "--config_path",
            place / "config.json", "--total_steps", "1"]
    for flag in ("--vocab_path", "--config_path"):
        argv = base + ["--output_model_path", base[base.index(flag) + 1]]
        refused(pretrain.main, argv, place, capsys, f"is the same file as {flag}")
    refused(pretrain.main, base + ["--output_model_path", place / "model.bin", "--pretrained_model_path",
                                   place / "model.bin"], place, capsys, "same file as --pretrained_model_path")
    refused(pretrain.main, base + ["--output_model_path", place / "dataset"], place, capsys,
            "same file as --dataset_path")
    refused(pretrain.main, base + ["--output_model_path", place / "dataset" / "meta.json"], place, capsys,
            "inside --dataset_path")


def test_pretrain_companion_and_checkpoint_of_the_output(place, capsys):
    base = ["--dataset_path", place / "dataset", "--vocab_path", place / "vocab.txt", "--total_steps", "1"]
    line = refused(pretrain.main, base + ["--config_path", place / "model.bin.config.json", "--output_model_path",
                                          place / "model.bin"], place, capsys, "same file as --config_path")
    assert "model.bin.config.json" in line
    step = place / "m.bin-100"
    step.write_bytes(b"weights of step 100")
    refused(pretrain.main, base + ["--config_path", place / "config.json", "--pretrained_model_path", step,
                                   "--output_model_path", place / "m.bin"], place, capsys, "is a checkpoint of")


def test_links_are_followed(place, capsys):
    (place / "link.bin").symlink_to(place / "model.bin")
    os.link(place / "train.tsv", place / "hard.tsv")
    base = ["--vocab_path", place / "vocab.txt", "--dev_path", place / "test.tsv"]
    refused(finetune_main("classification"), base + ["--train_path", place / "train.tsv", "--pretrained_model_path",
                                                     place / "model.bin", "--output_model_path", place / "link.bin"],
            place, capsys, "same file as --pretrained_model_path")
    refused(finetune_main("classification"), base + ["--train_path", place / "train.tsv", "--output_model_path",
                                                     place / "hard.tsv"], place, capsys, "same file as --train_path")
    refused(finetune_main("classification"), base + ["--train_path", place / "train.tsv", "--output_model_path",
                                                     place / "sub" / ".." / "test.tsv"], place, capsys,
            "same file as --dev_path")


def test_finetune_companions_and_inference(place, capsys):
    refused(finetune_main("classification"), ["--vocab_path", place / "vocab.txt", "--train_path",
                                              place / "train.tsv", "--dev_path", place / "test.tsv", "--config_path",
                                              place / "model.bin.config.json", "--output_model_path",
                                              place / "model.bin"], place, capsys, "model.bin.config.json")
    infer = infer_main("classification")
    base = ["--vocab_path", place / "vocab.txt", "--load_model_path", place / "model.bin", "--test_path",
            place / "test.tsv"]
    for output, flag in ((place / "test.tsv", "--test_path"), (place / "model.bin", "--load_model_path"),
                         (place / "model.bin.config.json", "the config beside --load_model_path")):
        refused(infer, base + ["--prediction_path", output], place, capsys, f"same file as {flag}")


def test_extract_features_and_the_utilities(place, capsys):
    model, vocab, test = place / "model.bin", place / "vocab.txt", place / "test.tsv"
    cases = [
        (extract_features.main, ["--load_model_path", model, "--vocab_path", vocab, "--test_path", test,
                                 "--prediction_path", test], "--test_path"),
        (cloze_test.main, ["--load_model_path", model, "--vocab_path", vocab, "--test_path", test,
                           "--prediction_path", vocab], "--vocab_path"),
        (extract_embeddings.main, ["--load_model_path", model, "--vocab_path", vocab, "--word_embedding_path",
                                   model], "--load_model_path"),
        (topn_words_indep.main, ["--load_model_path", model, "--vocab_path", vocab, "--test_path", test,
                                 "--prediction_path", test], "--test_path"),
        (topn_words_dep.main, ["--load_model_path", model, "--vocab_path", vocab, "--cand_vocab_path",
                               place / "corpus.txt", "--test_path", test, "--prediction_path", place / "corpus.txt"],
         "--cand_vocab_path"),
        (average_models.main, ["--model_list_path", model, place / "other.bin", "--output_model_path",
                               place / "other.bin"], "--model_list_path"),
        (average_models.main, ["--model_list_path", place / "x.bin", "--output_model_path", place / "model.bin",
                               "--model_list_path", model], "--model_list_path"),
        (dynamic_vocab_adapter.main, ["--old_model_path", model, "--old_vocab_path", vocab, "--new_vocab_path",
                                      place / "corpus.txt", "--new_model_path", vocab], "--old_vocab_path"),
        (dynamic_vocab_adapter.main, ["--old_model_path", place / "other.bin", "--old_vocab_path", vocab,
                                      "--new_vocab_path", place / "corpus.txt", "--config_path",
                                      place / "model.bin.config.json", "--new_model_path", model], "--config_path"),
        (diff_vocab.main, ["--vocab_1", vocab, "--vocab_2", place / "corpus.txt", "--output_path",
                           place / "corpus.txt"], "--vocab_2"),
        (build_vocab.main, ["--corpus_path", place / "corpus.txt", "--vocab_path", place / "corpus.txt",
                            "--spm_model_path", place / "new.model"], "--corpus_path"),
        (consolidate.main, ["--input_path", place / "run.bin.deepspeed" / "step1", "--config_path",
                            place / "config.json", "--output_model_path", place / "config.json"], "--config_path"),
    ]
    for entry, argv, flag in cases:
        refused(entry, argv, place, capsys, f"same file as {flag}")


def test_preprocess_never_replaces_its_corpus(place, capsys):
    base = ["--vocab_path", place / "vocab.txt"]
    refused(preprocess.main, base + ["--corpus_path", place / "corpus.txt", "--dataset_path", place / "corpus.txt"],
            place, capsys, "same file as --corpus_path")
    (place / "dataset" / "corpus.txt").write_text("a corpus kept beside the old dataset\n")
    refused(preprocess.main, base + ["--corpus_path", place / "dataset" / "corpus.txt", "--dataset_path",
                                     place / "dataset"], place, capsys, "replaced as a whole")


def test_convert_never_writes_into_its_input(place, capsys):
    hf = place / "hf"
    to_uer = ["--from", "hf", "--to", "uer", "--input_dir", hf]
    refused(convert.main, to_uer + ["--output_model_path", place / "u.bin", "--output_vocab_path", hf / "vocab.txt"],
            place, capsys, f"inside --input_dir {hf}")
    refused(convert.main, to_uer + ["--output_model_path", hf / "pytorch_model.bin"], place, capsys,
            "pytorch_model.bin inside --input_dir")
    refused(convert.main, ["--from", "uer", "--to", "hf", "--input_model_path", place / "model.bin", "--config_path",
                           hf / "config.json", "--output_dir", hf, "--architecture", "bert"], place, capsys,
            "writes", "same file as --config_path")
    refused(convert.bert_shim_main, ["--input_model_path", hf / "pytorch_model.bin", "--output_model_path",
                                     place / "u.bin", "--output_config_path", hf / "config.json"], place, capsys,
            "config.json inside the directory of --input_model_path")
