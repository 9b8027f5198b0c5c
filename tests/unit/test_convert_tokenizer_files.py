"""scripts/convert.py carries byte-level BPE tokenizer files both ways: a GPT-2 / RoBERTa directory's
vocab.json + merges.txt come out with --output_vocab_path/--output_merges_path, and go back in with
--vocab_path/--merges_path plus a tokenizer_config.json; transformers' AutoTokenizer then loads the
re-exported directory and gives our ``--tokenizer bpe`` ids on real English text."""

import filecmp
import json
import os

import pytest

T = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")   # only to train the tiny BPE model for the test
pytest.importorskip("regex")

from uer.convert.cli import main as convert_main  # noqa: E402
from uer.data.tokenizers import build_tokenizer  # noqa: E402

T.logging.set_verbosity_error()
ROBERTA = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def sst2(data_dir, name, limit):
    with open(os.path.join(data_dir, "en", "sst2", name), encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[1] for line in f.readlines()[1:limit + 1]]


def hf_dir(path, family, training):
    bpe = tokenizers.ByteLevelBPETokenizer()
    specials = ["<|endoftext|>"] if family == "gpt2" else ROBERTA
    bpe.train_from_iterator(training, vocab_size=600, min_frequency=2, special_tokens=specials, show_progress=False)
    os.makedirs(path)
    bpe.save_model(str(path))
    size = bpe.get_vocab_size()
    if family == "gpt2":
        model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=size, n_embd=32, n_layer=1, n_head=2, n_positions=40,
                                               bos_token_id=0, eos_token_id=0))
    else:
        model = T.RobertaForMaskedLM(T.RobertaConfig(vocab_size=size, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=37,
                                                     max_position_embeddings=42, type_vocab_size=1,
                                                     pad_token_id=1, bos_token_id=0, eos_token_id=2))
    model.save_pretrained(path)
    return size


@pytest.mark.parametrize("family", ["gpt2", "roberta"])
def test_bpe_files_round_trip(family, tmp_path, data_dir):
    src = tmp_path / "hf"
    size = hf_dir(src, family, sst2(data_dir, "train.tsv", 3000))
    vocab, merges = str(tmp_path / "uer_vocab.json"), str(tmp_path / "uer_merges.txt")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "uer.bin"), "--output_vocab_path", vocab, "--output_merges_path", merges])
    assert filecmp.cmp(vocab, src / "vocab.json", shallow=False)
    assert filecmp.cmp(merges, src / "merges.txt", shallow=False)

    back = tmp_path / "back"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "uer.bin"),
                  "--config_path", str(tmp_path / "uer.json"), "--vocab_path", vocab, "--merges_path", merges,
                  "--output_dir", str(back), "--architecture", family])
    expected = {"gpt2": "GPT2Tokenizer", "roberta": "RobertaTokenizer"}[family]
    assert json.loads((back / "tokenizer_config.json").read_text())["tokenizer_class"] == expected
    hf_config = json.loads((back / "config.json").read_text())
    assert hf_config["vocab_size"] == size
    if family == "gpt2":
        assert hf_config["bos_token_id"] == hf_config["eos_token_id"] == 0
    else:
        assert (hf_config["bos_token_id"], hf_config["pad_token_id"], hf_config["eos_token_id"]) == (0, 1, 2)

    theirs = T.AutoTokenizer.from_pretrained(str(back))
    assert type(theirs).__name__ == expected
    ours = build_tokenizer("bpe", vocab, merges_path=merges)
    texts = sst2(data_dir, "dev.tsv", 872)
    bad = [t for t in texts if ours.encode(t) != theirs(t, add_special_tokens=False)["input_ids"]]
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"


def test_bpe_file_errors(tmp_path, data_dir, capsys):
    src = tmp_path / "hf"
    hf_dir(src, "gpt2", sst2(data_dir, "train.tsv", 500))

    def error(*flags):
        with pytest.raises(SystemExit) as e:
            convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src),
                          "--output_model_path", str(tmp_path / "m.bin"), *flags])
        assert e.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert "--output_merges_path" in error("--output_vocab_path", str(tmp_path / "v.json"))
    assert "--output_vocab_path and --output_merges_path" in error("--output_spm_model_path", str(tmp_path / "s"))
    assert not (tmp_path / "m.bin").exists()     # refused before anything was written
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "m.bin")])
    with pytest.raises(SystemExit):
        convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "m.bin"),
                      "--config_path", str(tmp_path / "m.json"), "--merges_path", str(src / "merges.txt"),
                      "--output_dir", str(tmp_path / "x"), "--architecture", "gpt2"])
    assert "--merges_path needs --vocab_path" in capsys.readouterr().err
