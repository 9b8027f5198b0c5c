"""LLaMA-family tokenizers through scripts/convert.py, both ways.

A byte-level BPE ``tokenizer.json`` in five pre-tokenizer styles (GPT-2, SmolLM's digits, LLaMA-3's, Qwen2's
and BLOOM's patterns; LLaMA-3's ``ignore_merges``; Qwen2's NFC), trained here with ``tokenizers`` on real
English and Chinese text, becomes our ``--tokenizer bpe`` files: the same ids as transformers on other
real text, special tokens kept at their ids.  Exported back, transformers loads the ``tokenizer.json``
and it equals the original in every part.  What our bpe would cut differently is refused before
anything is written.  A LLaMA-2 style SentencePiece ``tokenizer.model`` travels unchanged both ways.
"""

import filecmp
import json
import os

import pytest

T = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")    # only to build the tokenizers under test
pytest.importorskip("regex")

from uer.convert.cli import main as convert_main  # noqa: E402
from uer.data.bpe_rules import KNOWN_PATTERNS  # noqa: E402
from uer.data.tokenizers import build_tokenizer  # noqa: E402

T.logging.set_verbosity_error()
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"]
HARD = ["a<|end_of_text|>b 1234567 x\r\n\n  y", "e\u0301 café ÿ ß", "it's THEY'RE we'LL", "  leading and trailing  ",
        "emoji 😀👍🏽 and 🇨🇳", "中文，标点。混合 English text！", "tabs\tand\r\nnewlines \n", "3.14159 and 1,000,000 ½ ²",
        "<|begin_of_text|><|end_of_text|>", ""]


def read(data_dir, *parts, limit, column=None):
    with open(os.path.join(data_dir, *parts), encoding="utf-8") as f:
        rows = f.read().splitlines()
    if column is not None:
        rows = [r.split("\t")[column] for r in rows[1:]]
    return rows[:limit]


def training_text(data_dir):
    return read(data_dir, "en", "wikitext-2", "valid.txt", limit=1500) + \
        read(data_dir, "zh", "corpora", "chnsenticorp.txt", limit=500)


def held_out_text(data_dir):
    return read(data_dir, "en", "wikitext-2", "test.txt", limit=600) + \
        read(data_dir, "zh", "corpora", "CLUECorpusSmall_sampled.txt", limit=40) + \
        read(data_dir, "zh", "book_review", "dev.tsv", limit=100, column=1) + HARD


def pre_tokenizer(style):
    P = tokenizers.pre_tokenizers
    if style in ("llama3", "qwen2", "bloom"):
        return P.Sequence([P.Split(tokenizers.Regex(KNOWN_PATTERNS[style]), behavior="isolated"),
                           P.ByteLevel(add_prefix_space=False, use_regex=False)])
    if style == "smollm":
        return P.Sequence([P.Digits(individual_digits=True), P.ByteLevel(add_prefix_space=False, use_regex=True)])
    return P.ByteLevel(add_prefix_space=False)


def write_tokenizer(directory, style, lines, vocab_size=800):
    """A tokenizer.json of ``style`` + tokenizer_config.json naming its start / end tokens."""
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(ignore_merges=style == "llama3"))
    tok.pre_tokenizer = pre_tokenizer(style)
    if style == "qwen2":
        tok.normalizer = tokenizers.normalizers.NFC()
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens(SPECIALS)     # after the BPE vocabulary: ids the merges never reach
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIALS[0],
                   "eos_token": SPECIALS[1]}, f)
    return tok.get_vocab_size()


def write_model(directory, vocab_size, model_type="llama", tokens=None):
    """A tiny model whose start / end ids are the tokenizer's (``tokens``: its size, default vocab_size)."""
    tokens = tokens or vocab_size
    cls, cfg = {"llama": (T.LlamaForCausalLM, T.LlamaConfig), "qwen2": (T.Qwen2ForCausalLM, T.Qwen2Config)}[model_type]
    model = cls(cfg(vocab_size=vocab_size, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32, bos_token_id=tokens - 3,
                    eos_token_id=tokens - 2))
    model.save_pretrained(directory)


def assert_same_ids(ours, theirs, texts):
    bad = [t for t in texts if ours.encode(t) != theirs(t, add_special_tokens=False)["input_ids"]]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, first: {bad[0][:120]!r}"


@pytest.mark.parametrize("style", ["gpt2", "smollm", "llama3", "qwen2", "bloom"])
def test_tokenizer_json_round_trip(style, tmp_path, data_dir):
    src, back = tmp_path / "hf", tmp_path / "back"
    size = write_tokenizer(src, style, training_text(data_dir))
    # Qwen2's embedding has spare rows beyond its tokenizer's ids (151,936 vs 151,665): so does this one.
    rows = size + 7 if style == "qwen2" else size
    write_model(src, rows, "qwen2" if style == "qwen2" else "llama", tokens=size)
    vocab, merges = str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "uer.bin"), "--output_vocab_path", vocab, "--output_merges_path", merges])
    ours = build_tokenizer("bpe", vocab, merges_path=merges)
    theirs = T.PreTrainedTokenizerFast.from_pretrained(str(src))
    assert len(ours.vocab) == rows
    assert [ours.vocab.token_to_id(s) for s in SPECIALS] == [size - 3, size - 2, size - 1]
    assert (ours.vocab.cls_id, ours.vocab.sep_id) == (size - 3, size - 2)    # generation's start / end
    assert_same_ids(ours, theirs, held_out_text(data_dir))

    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "uer.bin"),
                  "--config_path", str(tmp_path / "uer.json"), "--vocab_path", vocab, "--merges_path", merges,
                  "--output_dir", str(back), "--architecture", "qwen2" if style == "qwen2" else "llama"])
    original = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    exported = json.loads((back / "tokenizer.json").read_text(encoding="utf-8"))
    assert exported == original
    config = json.loads((back / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"]) == tuple(SPECIALS[:2])
    hf_config = json.loads((back / "config.json").read_text())
    assert (hf_config["bos_token_id"], hf_config["eos_token_id"], hf_config["vocab_size"]) == (size - 3, size - 2, rows)
    reloaded = T.AutoTokenizer.from_pretrained(str(back))
    assert reloaded.bos_token == SPECIALS[0] and reloaded.eos_token == SPECIALS[1]
    assert_same_ids(ours, reloaded, held_out_text(data_dir)[-60:])


def test_ignore_merges_is_applied(tmp_path, data_dir):
    """LLaMA-3's ignore_merges: a word found whole in the vocabulary is one token even where the merges do
    not build it (a token the merges cannot reach is put in the vocabulary to show it)."""
    src = tmp_path / "hf"
    write_tokenizer(src, "llama3", training_text(data_dir))
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    assert "zqxj" not in vocab
    vocab["zqxj"] = len(vocab)
    for token in data["added_tokens"]:       # the added tokens move up one id
        token["id"] += 1
    (src / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    write_model(src, len(vocab) + len(data["added_tokens"]))
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                  str(tmp_path / "uer.bin"), "--output_vocab_path", str(tmp_path / "v.json"),
                  "--output_merges_path", str(tmp_path / "m.txt")])
    ours = build_tokenizer("bpe", str(tmp_path / "v.json"), merges_path=str(tmp_path / "m.txt"))
    theirs = T.PreTrainedTokenizerFast(tokenizer_file=str(src / "tokenizer.json"))
    for text in ("zqxj", "zqxj, zqxj!"):
        assert ours.encode(text) == theirs(text, add_special_tokens=False)["input_ids"]
    assert ours.encode("zqxj") == [vocab["zqxj"]]
    ours.ignore_merges, ours._cache = False, {}
    assert len(ours.encode("zqxj")) > 1          # the merges alone do not reach it


def refused(tmp_path, capsys, src, *extra):
    with pytest.raises(SystemExit) as e:
        convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path",
                      str(tmp_path / "m.bin"), "--output_vocab_path", str(tmp_path / "v.json"),
                      "--output_merges_path", str(tmp_path / "m.txt"), *extra])
    assert e.value.code == 2
    assert not (tmp_path / "m.bin").exists() and not (tmp_path / "v.json").exists()
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_what_our_bpe_would_cut_differently_is_refused(tmp_path, data_dir, capsys):
    src = tmp_path / "hf"
    size = write_tokenizer(src, "llama3", training_text(data_dir)[:300], vocab_size=400)
    write_model(src, size)
    path = src / "tokenizer.json"
    original = json.loads(path.read_text(encoding="utf-8"))

    def variant(change):
        data = json.loads(json.dumps(original))
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")

    variant(lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(pattern={"Regex": r"\w+|\s+"}))
    message = refused(tmp_path, capsys, src)
    assert "Split pattern" in message and "llama3" in message
    variant(lambda d: d["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True))
    assert "add_prefix_space" in refused(tmp_path, capsys, src)
    variant(lambda d: d["added_tokens"][0].update(lstrip=True))
    assert "lstrip" in refused(tmp_path, capsys, src)
    variant(lambda d: d.update(normalizer={"type": "Lowercase"}))
    assert "normalizer 'Lowercase'" in refused(tmp_path, capsys, src)
    variant(lambda d: d.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                                              "split": False}))
    assert "Metaspace" in refused(tmp_path, capsys, src)
    # LLaMA-2's tokenizer.json is a byte-fallback BPE: the error points to its tokenizer.model
    variant(lambda d: d["model"].update(byte_fallback=True))
    (src / "tokenizer.model").write_bytes(b"placeholder")
    message = refused(tmp_path, capsys, src)
    assert "byte_fallback" in message and "--output_spm_model_path" in message
    variant(lambda d: None)
    (src / "tokenizer_config.json").unlink()
    os.remove(src / "tokenizer.model")
    config = json.loads((src / "config.json").read_text())
    config.pop("eos_token_id")
    (src / "config.json").write_text(json.dumps(config))
    assert "end-of-text token" in refused(tmp_path, capsys, src)


def test_sentencepiece_tokenizer_model_both_ways(tmp_path, data_dir):
    """LLaMA-1/2: tokenizer.model out with --output_spm_model_path, back with --spm_model_path (a LlamaTokenizer
    config with <s> / </s>); transformers' ids equal ours (``--do_lower_case false``) on real text.  Known
    differences of transformers' LlamaTokenizer from SentencePiece itself are left out of the texts: a text
    starting with a space (SentencePiece adds its word-start mark anyway) and special tokens written in the text."""
    spm = pytest.importorskip("sentencepiece")
    src, back = tmp_path / "hf", tmp_path / "back"
    os.makedirs(src)
    lines = [line for line in training_text(data_dir) if line.strip()]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(src / "tokenizer"), vocab_size=3000,
                                   model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True,
                                   split_digits=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, minloglevel=2)
    write_model(src, 3000)
    spm_path = str(tmp_path / "llama.model")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(src), "--output_model_path", str(tmp_path / "uer.bin"),
                  "--output_spm_model_path", spm_path])
    assert filecmp.cmp(spm_path, src / "tokenizer.model", shallow=False)
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", str(tmp_path / "uer.bin"), "--config_path",
                  str(tmp_path / "uer.json"), "--spm_model_path", spm_path, "--output_dir", str(back),
                  "--architecture", "llama"])
    assert filecmp.cmp(spm_path, back / "tokenizer.model", shallow=False)
    hf_config = json.loads((back / "config.json").read_text())
    assert (hf_config["bos_token_id"], hf_config["eos_token_id"]) == (1, 2)
    theirs = T.AutoTokenizer.from_pretrained(str(back))
    assert type(theirs).__name__ == "LlamaTokenizer" and theirs("a b")["input_ids"][0] == 1
    ours = build_tokenizer("spm", spm_model_path=spm_path, do_lower_case=False)
    assert (ours.vocab.cls_id, ours.vocab.sep_id) == (1, 2)
    texts = [t.strip().replace("<unk>", "unk") for t in held_out_text(data_dir) if t.strip() and "<|" not in t]
    assert_same_ids(ours, theirs, texts)
