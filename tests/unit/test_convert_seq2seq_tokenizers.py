"""scripts/convert.py carries T5's SentencePiece tokenizer both ways, and refuses PEGASUS's and Marian's.

A tiny T5-layout SentencePiece model (pad 0, eos 1, unk 2) is trained here on SST-2; a Hugging Face T5
directory holds it as spiece.model with 100 sentinels added by transformers (ids N .. N+99, <extra_id_0>
last).  Import must give a uer spm model whose ids — sentinels included — are transformers'; export must
give a directory whose AutoTokenizer gives our ids again, the sentinels special as T5 has them."""

import filecmp
import io
import json
import os

import pytest

T = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")
pytest.importorskip("google.protobuf")

from uer.convert.cli import main as convert_main  # noqa: E402
from uer.data.noising import sentinel_ids  # noqa: E402
from uer.data.tokenizers import build_tokenizer  # noqa: E402

T.logging.set_verbosity_error()
EXTRA = 100
SPARE = 12          # embedding rows beyond the tokenizer's tokens, as T5's 32,128 rows for 32,100 tokens
SIZES = dict(d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
             relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
             decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def sst2(data_dir, name, limit=None):
    with open(os.path.join(data_dir, "en", "sst2", name), encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[1] for line in f.readlines()[1:][:limit]]


def wikitext(data_dir):
    with open(os.path.join(data_dir, "en", "wikitext-2", "valid.txt"), encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    # transformers matches the special tokens' texts inside a text ("<unk>" -> id 2), SentencePiece (and
    # so uer's spm tokenizer, like T5's own pipeline) segments them as text; wikitext writes "<unk>" often.
    return [line for line in lines if "<unk>" not in line][:300]


def train_spm(path, lines, **layout):
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, vocab_size=400,
                                   model_type="unigram", minloglevel=2, **layout)
    path.write_bytes(out.getvalue())
    return str(path)


T5_LAYOUT = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory, data_dir):
    """A Hugging Face T5 directory as the hub has them: spiece.model, tokenizer.json with the sentinels."""
    root = tmp_path_factory.mktemp("t5tok")
    model_file = train_spm(root / "trained.model", sst2(data_dir, "train.tsv", 3000), **T5_LAYOUT)
    pieces = spm.SentencePieceProcessor(model_file=model_file).get_piece_size()
    src = root / "hf"
    T.T5ForConditionalGeneration(T.T5Config(vocab_size=pieces + EXTRA + SPARE, **SIZES)).save_pretrained(str(src))
    (src / "spiece.model").write_bytes((root / "trained.model").read_bytes())
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": EXTRA}))
    T.AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(src))    # writes tokenizer.json as the hub has
    assert (src / "tokenizer.json").is_file()
    return root, src, pieces


def ids_differ(ours, theirs, texts):
    return [t for t in texts if ours.encode(t) != theirs(t, add_special_tokens=False)["input_ids"]]


def test_t5_spm_import_gives_transformers_ids(t5_dir, data_dir):
    root, src, pieces = t5_dir
    out = root / "imported"
    out.mkdir(exist_ok=True)
    spm_path = str(out / "t5.model")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(out / "t5.bin"), "--output_spm_model_path", spm_path])
    theirs = T.AutoTokenizer.from_pretrained(str(src))
    ours = build_tokenizer("spm", spm_model_path=spm_path, do_lower_case=False)
    assert len(theirs) == pieces + EXTRA and len(ours.vocab) == pieces + EXTRA + SPARE
    assert json.loads((out / "t5.json").read_text())["vocab_size"] == len(ours.vocab)
    assert max(ours.encode(" ".join(ours.vocab.tokens[-SPARE:]))) < pieces    # spare pieces: never from text
    names = [f"<extra_id_{i}>" for i in range(EXTRA)]
    expected = theirs.convert_tokens_to_ids(names)
    assert expected == [pieces + EXTRA - 1 - i for i in range(EXTRA)]        # T5's order: <extra_id_0> last
    assert ours.convert_tokens_to_ids(names) == expected
    assert sentinel_ids(ours.vocab, EXTRA, "test") == expected               # what the t5 processor will use
    # a sentinel written in a text is one piece (SentencePiece puts its word-start "\u2581" before it;
    # transformers splits added tokens off first, so texts with sentinels written in them differ by that)
    assert [ours.encode(n)[-1] for n in names[:3]] == expected[:3]
    texts = sst2(data_dir, "dev.tsv") + wikitext(data_dir)
    bad = ids_differ(ours, theirs, texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"


@pytest.mark.parametrize("files", ["extra_ids", "added_tokens_decoder"])
def test_t5_spm_import_without_tokenizer_json(files, t5_dir, tmp_path):
    """A directory without tokenizer.json: the sentinels' ids come from tokenizer_config.json (transformers
    4's added_tokens_decoder, else extra_ids) and must be the same as tokenizer.json's."""
    import shutil
    root, src, pieces = t5_dir
    reference = tmp_path / "reference.model"
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "a.bin"), "--output_spm_model_path", str(reference)])
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "spiece.model"):
        shutil.copy(src / name, bare / name)
    names = {pieces + EXTRA - 1 - i: f"<extra_id_{i}>" for i in range(EXTRA)}
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": EXTRA} if files == "extra_ids" else \
        {"tokenizer_class": "T5Tokenizer", "added_tokens_decoder": {
            str(i): {"content": t, "special": True} for i, t in {0: "<pad>", 1: "</s>", 2: "<unk>", **names}.items()}}
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    out = tmp_path / "bare.model"
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(bare), "--output_model_path",
                  str(tmp_path / "b.bin"), "--output_spm_model_path", str(out)])
    assert filecmp.cmp(out, reference, shallow=False)


def test_t5_spm_export_loads_in_transformers(t5_dir, data_dir):
    root, src, pieces = t5_dir
    work = root / "export"
    work.mkdir(exist_ok=True)
    spm_path = str(work / "t5.model")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(work / "t5.bin"), "--output_spm_model_path", spm_path])
    back = work / "back"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(work / "t5.bin"), "--config_path",
                  str(work / "t5.json"), "--spm_model_path", spm_path, "--output_dir", str(back),
                  "--architecture", "t5"])
    # the sentinels come off the model again: spiece.model is the original file, extra_ids re-adds them
    assert filecmp.cmp(back / "spiece.model", root / "trained.model", shallow=False)
    config = json.loads((back / "tokenizer_config.json").read_text())
    assert (config["tokenizer_class"], config["extra_ids"]) == ("T5Tokenizer", EXTRA)
    assert (config["pad_token"], config["eos_token"], config["unk_token"]) == ("<pad>", "</s>", "<unk>")
    hf_config = json.loads((back / "config.json").read_text())
    assert (hf_config["vocab_size"], hf_config["pad_token_id"], hf_config["eos_token_id"]) == \
        (pieces + EXTRA + SPARE, 0, 1)

    theirs = T.AutoTokenizer.from_pretrained(str(back))
    ours = build_tokenizer("spm", spm_model_path=spm_path, do_lower_case=False)
    assert type(theirs).__name__ == "T5Tokenizer" and len(theirs) == len(ours.vocab) - SPARE
    names = [f"<extra_id_{i}>" for i in range(EXTRA)]
    assert theirs.convert_tokens_to_ids(names) == ours.convert_tokens_to_ids(names)
    assert set(names) <= set(theirs.all_special_tokens)                     # special, as T5 has them
    assert theirs("a b")["input_ids"][-1] == ours.vocab.token_to_id("</s>")  # T5 closes texts with </s>
    texts = sst2(data_dir, "dev.tsv") + wikitext(data_dir)
    bad = ids_differ(ours, theirs, texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"


def uer_t5(tmp_path, vocab_size):
    """A uer T5 checkpoint + config of ``vocab_size`` tokens (converted from a random transformers one)."""
    src = tmp_path / "hf_t5"
    T.T5ForConditionalGeneration(T.T5Config(vocab_size=vocab_size, **SIZES)).save_pretrained(str(src))
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "t5.bin")])
    return str(tmp_path / "t5.bin"), str(tmp_path / "t5.json")


def test_t5_export_of_a_model_trained_with_sentinels(tmp_path, data_dir):
    """A uer spm model trained with the sentinels as user-defined symbols (ids 3 ..): transformers takes
    them at the model's ids, so no extra_ids are added."""
    sentinels = [f"<extra_id_{i}>" for i in range(8)]
    spm_path = train_spm(tmp_path / "own.model", sst2(data_dir, "train.tsv", 3000),
                         user_defined_symbols=sentinels, **T5_LAYOUT)
    ours = build_tokenizer("spm", spm_model_path=spm_path, do_lower_case=False)
    model, config = uer_t5(tmp_path, len(ours.vocab))
    back = tmp_path / "back"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model, "--config_path", config,
                  "--spm_model_path", spm_path, "--output_dir", str(back), "--architecture", "t5"])
    assert json.loads((back / "tokenizer_config.json").read_text())["extra_ids"] == 0
    theirs = T.AutoTokenizer.from_pretrained(str(back))
    assert len(theirs) == len(ours.vocab)
    assert theirs.convert_tokens_to_ids(sentinels) == ours.convert_tokens_to_ids(sentinels) == list(range(3, 11))
    texts = sst2(data_dir, "dev.tsv")
    bad = ids_differ(ours, theirs, texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"


def _error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        convert_main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_t5_export_refuses_another_layout(tmp_path, data_dir, capsys):
    spm_path = train_spm(tmp_path / "default.model", sst2(data_dir, "train.tsv", 2000))   # unk 0, bos 1, eos 2
    model, config = uer_t5(tmp_path, spm.SentencePieceProcessor(model_file=spm_path).get_piece_size())
    message = _error(capsys, ["--from", "uer", "--to", "hf", "--input_model_path", model, "--config_path", config,
                              "--spm_model_path", spm_path, "--output_dir", str(tmp_path / "out"),
                              "--architecture", "t5"])
    assert "pad 0, eos 1, unk 2" in message and "--bos_id=-1" in message
    assert not (tmp_path / "out").exists()                                   # refused before writing


def _tiny(family, path, vocab_size=96):
    sizes = dict(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=40)
    if family == "pegasus":
        model = T.PegasusForConditionalGeneration(T.PegasusConfig(**sizes, pad_token_id=0, eos_token_id=1,
                                                                  decoder_start_token_id=0))
    else:
        model = T.MarianMTModel(T.MarianConfig(**sizes, pad_token_id=95, eos_token_id=0, decoder_start_token_id=95,
                                               decoder_vocab_size=96))
    model.save_pretrained(str(path))


def test_pegasus_spm_both_ways(tmp_path, data_dir, capsys):
    """PEGASUS: piece i at id i + 103 after <pad> </s> <mask_1> <mask_2> <unk_2> .. <unk_102>."""
    src = tmp_path / "hf"
    original = train_spm(tmp_path / "trained.model", sst2(data_dir, "train.tsv", 3000), **T5_LAYOUT)
    pieces = spm.SentencePieceProcessor(model_file=original).get_piece_size()
    _tiny("pegasus", src, pieces + 103 + SPARE)
    (src / "spiece.model").write_bytes((tmp_path / "trained.model").read_bytes())
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PegasusTokenizer"}))
    spm_path = str(tmp_path / "pegasus.model")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "m.bin"), "--output_spm_model_path", spm_path])
    theirs = T.AutoTokenizer.from_pretrained(str(src))
    ours = build_tokenizer("spm", spm_model_path=spm_path, do_lower_case=False)
    assert len(theirs) == pieces + 103 and len(ours.vocab) == pieces + 103 + SPARE
    specials = ["<pad>", "</s>", "<mask_1>", "<mask_2>", "<unk_2>", "<unk_102>", "<unk>"]
    assert ours.convert_tokens_to_ids(specials) == theirs.convert_tokens_to_ids(specials) == [0, 1, 2, 3, 4, 104, 105]
    assert ours.vocab.unk_id == theirs.unk_token_id == 105
    # transformers' Pegasus pre-tokenizer turns trailing whitespace into a "\u2581" piece, SentencePiece drops
    # it: compare lines as texts are usually given, stripped
    texts = [t.strip() for t in sst2(data_dir, "dev.tsv") + wikitext(data_dir)]
    bad = ids_differ(ours, theirs, texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"

    back = tmp_path / "back"
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "m.bin"), "--config_path",
                  str(tmp_path / "m.json"), "--spm_model_path", spm_path, "--output_dir", str(back),
                  "--architecture", "pegasus"])
    assert filecmp.cmp(back / "spiece.model", original, shallow=False)
    assert json.loads((back / "config.json").read_text())["vocab_size"] == pieces + 103 + SPARE
    theirs = T.AutoTokenizer.from_pretrained(str(back))
    assert type(theirs).__name__ == "PegasusTokenizer"
    assert theirs.convert_tokens_to_ids(specials) == ours.convert_tokens_to_ids(specials)
    bad = ids_differ(ours, theirs, texts)
    assert not bad, f"{len(bad)} of {len(texts)} lines differ, first: {bad[0]!r}"

    model, config = tmp_path / "m.bin", tmp_path / "m.json"       # a model without PEGASUS's 103 tokens
    data = json.loads(config.read_text())
    data["vocab_size"] = pieces
    config.write_text(json.dumps(data))
    message = _error(capsys, ["--from", "uer", "--to", "hf", "--input_model_path", str(model), "--config_path",
                              str(config), "--spm_model_path", original, "--output_dir", str(tmp_path / "out"),
                              "--architecture", "pegasus"])
    assert "pieces 2-104" in message and not (tmp_path / "out").exists()


@pytest.mark.parametrize("family,spm_name,reason", [("marian", "source.spm", "vocab.json")])
def test_marian_spm_refused(family, spm_name, reason, tmp_path, data_dir, capsys):
    src = tmp_path / "hf"
    _tiny(family, src)
    train_spm(src / spm_name, sst2(data_dir, "train.tsv", 1000), **T5_LAYOUT)
    message = _error(capsys, ["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                              str(tmp_path / "m.bin"), "--output_spm_model_path", str(tmp_path / "m.model")])
    assert reason in message and f"{family} model" in message
    assert not (tmp_path / "m.bin").exists() and not (tmp_path / "m.model").exists()
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "m.bin")])
    message = _error(capsys, ["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "m.bin"),
                              "--config_path", str(tmp_path / "m.json"), "--spm_model_path", str(src / spm_name),
                              "--output_dir", str(tmp_path / "out"), "--architecture", family])
    assert "--spm_model_path" in message and reason.split()[-1] in message
    assert not (tmp_path / "out").exists()
