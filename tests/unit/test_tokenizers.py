"""Tokenizers: BERT WordPiece rules by hand and parity with Hugging Face on real text; char, space and
SentencePiece tokenizers; build_tokenizer's argument rules; fingerprints."""

import os
import pickle
from typing import List

import pytest

from uer.data.tokenizers import (BertTokenizer, CharTokenizer, SentencePieceTokenizer, SpaceTokenizer,
                                 Tokenizer, build_tokenizer)
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.registry import TOKENIZERS

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["hello", "world", "un", "##aff", "##able", "cafe", "café", "Café", "中", "文", "the", "cat",
         ",", "!", ".", "'", "$", "^", "`", "-", "don", "t", "a", "b", "##b", "x", "##x", "ab", "sep",
         "[", "]", "mask"]


def real_data_dir() -> str:
    path = os.environ.get("UER_DATA_DIR")
    if not path:
        pytest.skip("UER_DATA_DIR not set (point it at shared/data to run tests on real data)")
    return path


@pytest.fixture
def vocab_file(tmp_path) -> str:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def vocab(vocab_file) -> Vocab:
    return Vocab.load(vocab_file)


def bert(vocab: Vocab, lower: bool = True) -> BertTokenizer:
    return BertTokenizer(vocab, do_lower_case=lower)


# ---------------------------------------------------------------------- BERT, by hand

def test_registry_names():
    for name in ("bert", "char", "space", "spm"):
        assert name in TOKENIZERS
    assert TOKENIZERS.get("bert") is BertTokenizer and TOKENIZERS.get("spm") is SentencePieceTokenizer


def test_wordpiece_continuation(vocab):
    assert bert(vocab).tokenize("unaffable") == ["un", "##aff", "##able"]
    assert bert(vocab).tokenize("abb") == ["ab", "##b"]  # longest match first, not a + ##b + ##b
    ids = bert(vocab).encode("unaffable")
    assert ids == [vocab.token_to_id(t) for t in ["un", "##aff", "##able"]]


def test_unmatchable_word_is_one_unk(vocab):
    # "abz": "ab" matches but "##z" does not -> the whole word is [UNK], not "ab" + [UNK].
    assert bert(vocab).tokenize("abz hello") == ["[UNK]", "hello"]


def test_long_word_is_unk(vocab):
    tok = bert(vocab)
    assert tok.tokenize("a" + "x" * 99) == ["a"] + ["##x"] * 99  # exactly 100 characters: split
    assert tok.tokenize("a" + "x" * 100) == ["[UNK]"]  # 101 characters: too long


def test_cjk_characters_are_split(vocab):
    assert bert(vocab).tokenize("中文hello") == ["中", "文", "hello"]
    # Hangul is not CJK-ideograph spaced: the whole run stays one (unknown) word.
    assert bert(vocab).tokenize("한국어") == ["[UNK]"]


def test_accents_stripped_only_when_lower_casing(vocab):
    assert bert(vocab, lower=True).tokenize("Café CAFÉ") == ["cafe", "cafe"]
    assert bert(vocab, lower=False).tokenize("Café café") == ["Café", "café"]
    # NFC first: "e" + combining acute is the same word as the precomposed "é".
    assert bert(vocab, lower=False).tokenize("cafe\u0301") == ["café"]


def test_punctuation_split(vocab):
    tok = bert(vocab)
    assert tok.tokenize("hello,world!") == ["hello", ",", "world", "!"]
    assert tok.tokenize("don't") == ["don", "'", "t"]
    # "$", "^", "`" are not Unicode punctuation but BERT splits all non-alphanumeric ASCII.
    assert tok.tokenize("a$b^a`b") == ["a", "$", "b", "^", "a", "`", "b"]
    assert tok.tokenize("hello\u3002") == ["hello", "[UNK]"]  # "。" (category Po) splits off


def test_cleaning_and_whitespace(vocab):
    tok = bert(vocab)
    assert tok.tokenize("hel\x00lo\ufffd \t\r\n world\u200b") == ["hello", "world"]
    assert tok.tokenize("hello\u3000world\xa0the") == ["hello", "world", "the"]
    assert tok.tokenize("") == [] and tok.tokenize("  \n ") == []


def test_special_tokens_kept_whole(vocab):
    tok = bert(vocab)
    assert tok.tokenize("hello [SEP] world") == ["hello", "[SEP]", "world"]
    assert tok.tokenize("hello[SEP]world[MASK]") == ["hello", "[SEP]", "world", "[MASK]"]
    assert tok.tokenize("[CLS][PAD][UNK]") == ["[CLS]", "[PAD]", "[UNK]"]
    # Case matters: "[sep]" is ordinary text, split on punctuation.
    assert tok.tokenize("[sep]") == ["[", "sep", "]"]
    assert tok.encode("[MASK]") == [vocab.mask_id]


def test_convert_tokens_and_ids(vocab):
    tok = bert(vocab)
    ids = tok.convert_tokens_to_ids(["hello", "nope", "[SEP]"])
    assert ids == [vocab.token_to_id("hello"), vocab.unk_id, vocab.sep_id]
    assert tok.convert_ids_to_tokens(ids) == ["hello", "[UNK]", "[SEP]"]


def test_bert_tokenizer_pickles_for_worker_processes(vocab):
    tok = bert(vocab)
    tok.tokenize("hello world unaffable")  # fill the word cache
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.tokenize("hello unaffable [SEP]") == tok.tokenize("hello unaffable [SEP]")
    assert clone.fingerprint() == tok.fingerprint()


# ---------------------------------------------------------------------- char and space

def test_char_tokenizer(vocab):
    tok = CharTokenizer(vocab, do_lower_case=True)
    assert tok.tokenize(" 中 文\tX\n") == ["中", "文", "x"]
    assert tok.tokenize("中z") == ["中", "[UNK]"]
    assert tok.encode("中z") == [vocab.token_to_id("中"), vocab.unk_id]
    assert CharTokenizer(vocab, do_lower_case=False).tokenize("X") == ["[UNK]"]


def test_space_tokenizer(vocab):
    tok = SpaceTokenizer(vocab, do_lower_case=True)
    assert tok.tokenize("  Hello\tworld  [SEP] don't\n") == ["hello", "world", "[SEP]", "don't"]
    assert tok.encode("hello don't") == [vocab.token_to_id("hello"), vocab.unk_id]
    assert SpaceTokenizer(vocab, do_lower_case=False).tokenize("Hello") == ["Hello"]


# ---------------------------------------------------------------------- SentencePiece

@pytest.fixture(scope="module")
def spm_model(tmp_path_factory) -> str:
    import sentencepiece as spm

    d = tmp_path_factory.mktemp("spm")
    corpus = d / "corpus.txt"
    lines = ["the quick brown fox jumps over the lazy dog", "a cat sat on a mat",
             "pack my box with five dozen liquor jugs", "how vexingly quick daft zebras jump",
             "the five boxing wizards jump quickly"]
    corpus.write_text("\n".join(lines * 30) + "\n", encoding="utf-8")
    prefix = str(d / "tiny")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=prefix, vocab_size=50, minloglevel=2,
                                   num_threads=1, pad_id=0, unk_id=1, pad_piece="[PAD]",
                                   unk_piece="[UNK]", bos_id=-1, eos_id=-1,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])
    return prefix + ".model"


def test_spm_round_trip(spm_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model)
    tok = SentencePieceTokenizer(spm_model)
    text = "the quick fox jumps over a lazy cat"
    pieces = tok.tokenize(text)
    assert pieces == sp.encode(text, out_type=str)
    assert tok.encode(text) == sp.encode(text) == tok.convert_tokens_to_ids(pieces)
    assert tok.convert_ids_to_tokens(tok.encode(text)) == pieces
    assert sp.decode(tok.encode(text)) == text
    assert len(tok.vocab) == sp.get_piece_size()
    assert tok.vocab.special_ids == [0, 1, 2, 3, 4]
    assert tok.convert_tokens_to_ids(["\u2581nonexistentpiece"]) == [tok.vocab.unk_id]


def test_spm_lower_casing_keeps_specials(spm_model):
    cased = SentencePieceTokenizer(spm_model, do_lower_case=False)
    lower = SentencePieceTokenizer(spm_model, do_lower_case=True)
    assert lower.tokenize("The Quick FOX") == cased.tokenize("the quick fox")
    assert "[MASK]" in lower.tokenize("the [MASK] fox")
    assert lower.vocab.sep_id in lower.encode("A [SEP] B")
    assert lower.encode("A [SEP] B") == cased.encode("a [SEP] b")


def test_spm_pickles(spm_model):
    tok = SentencePieceTokenizer(spm_model, do_lower_case=True)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode("The lazy dog") == tok.encode("The lazy dog")
    assert clone.fingerprint() == tok.fingerprint()


# ---------------------------------------------------------------------- build_tokenizer

def test_build_tokenizer_by_name(vocab_file):
    assert isinstance(build_tokenizer("bert", vocab_path=vocab_file), BertTokenizer)
    char = build_tokenizer("char", vocab_path=vocab_file, do_lower_case=False)
    assert isinstance(char, CharTokenizer) and char.do_lower_case is False
    assert isinstance(build_tokenizer("space", vocab_path=vocab_file), SpaceTokenizer)


def test_spm_path_wins_over_name(spm_model, vocab_file):
    # UER-py rule: --tokenizer bert --spm_model_path x.model tokenizes with x.model.
    tok = build_tokenizer("bert", vocab_path=vocab_file, spm_model_path=spm_model, do_lower_case=False)
    assert isinstance(tok, SentencePieceTokenizer)
    assert isinstance(build_tokenizer("spm", spm_model_path=spm_model), SentencePieceTokenizer)


def test_build_tokenizer_errors(tmp_path, vocab_file):
    with pytest.raises(DataError, match="--vocab_path is required for the bert tokenizer"):
        build_tokenizer("bert")
    with pytest.raises(DataError, match="--spm_model_path is required"):
        build_tokenizer("spm", vocab_path=vocab_file)
    with pytest.raises(ConfigError, match="--tokenizer.*bert"):
        build_tokenizer("bret", vocab_path=vocab_file)
    missing = str(tmp_path / "missing_vocab.txt")
    with pytest.raises(DataError, match="--vocab_path .*missing_vocab.txt"):
        build_tokenizer("bert", vocab_path=missing)
    with pytest.raises(DataError, match="--spm_model_path .*missing.model"):
        build_tokenizer("bert", spm_model_path=str(tmp_path / "missing.model"))


def test_fingerprint_and_describe(tmp_path, vocab_file, spm_model):
    copy = tmp_path / "elsewhere" / "vocab.txt"
    copy.parent.mkdir()
    copy.write_bytes(open(vocab_file, "rb").read())
    base = build_tokenizer("bert", vocab_path=vocab_file)
    assert build_tokenizer("bert", vocab_path=str(copy)).fingerprint() == base.fingerprint()
    others = [build_tokenizer("bert", vocab_path=vocab_file, do_lower_case=False),
              build_tokenizer("char", vocab_path=vocab_file),
              BertTokenizer(Vocab(SPECIALS + WORDS + ["extra"])),
              build_tokenizer("spm", spm_model_path=spm_model)]
    prints = {t.fingerprint() for t in others} | {base.fingerprint()}
    assert len(prints) == 5
    assert base.describe() == {"name": "bert", "do_lower_case": True,
                               "vocab_size": len(SPECIALS) + len(WORDS), "fingerprint": base.fingerprint()}
    spm_desc = others[-1].describe()
    assert spm_desc["name"] == "spm" and spm_desc["vocab_size"] == 50


def test_base_tokenizer_is_abstract(vocab):
    with pytest.raises(NotImplementedError):
        Tokenizer(vocab).tokenize("x")


# ---------------------------------------------------------------------- parity with Hugging Face

def hf_reference(vocab_path: str, do_lower_case: bool):
    """Hugging Face's slow (pure Python) BertTokenizer, built from the local vocab file."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        pytest.skip("transformers is not installed; it is only the reference for parity tests")
    try:  # transformers >= 5 keeps the slow tokenizer under this name
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
    except ImportError:  # transformers 4.x: BertTokenizer is the slow one
        from transformers import BertTokenizer as Slow
    return Slow(vocab_file=vocab_path, do_lower_case=do_lower_case)


def read_lines(path: str, n: int, column: int = -1, header: bool = False) -> List[str]:
    lines = []
    with open(path, encoding="utf-8") as f:
        if header:
            next(f)
        for line in f:
            line = line.rstrip("\n")
            lines.append(line.split("\t")[column] if column >= 0 else line)
            if len(lines) == n:
                break
    return lines


@pytest.mark.parametrize("vocab_name, corpus, column, header", [
    ("google_zh_vocab.txt", "zh/corpora/CLUECorpusSmall_bert_sampled.txt", -1, False),
    ("google_uncased_en_vocab.txt", "en/sst2/train.tsv", 1, True),
    ("google_uncased_en_vocab.txt", "en/wikitext-2/valid.txt", -1, False),
])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_parity_with_huggingface(vocab_name, corpus, column, header, do_lower_case):
    data = real_data_dir()
    vocab_path = os.path.join(data, "vocab", vocab_name)
    reference = hf_reference(vocab_path, do_lower_case)
    ours = BertTokenizer(Vocab.load(vocab_path), do_lower_case=do_lower_case)
    lines = read_lines(os.path.join(data, corpus), 300, column, header)
    assert len(lines) == 300
    mismatches = [(line, ours.tokenize(line), reference.tokenize(line))
                  for line in lines if ours.tokenize(line) != reference.tokenize(line)]
    assert not mismatches, f"{len(mismatches)} lines differ, first: {mismatches[0]}"
    # Ids too (the reference's vocab lookup is the same file).
    for line in lines[:50]:
        assert ours.encode(line) == reference.convert_tokens_to_ids(reference.tokenize(line))


def test_parity_on_hard_cases():
    data = real_data_dir()
    cases = ["Héllo, WORLD! naïve résumé", "e\u0301cole", "\u00adsoft\u200bhyphen", "a\x00b\ufffdc",
             "[SEP]x[sep][MASK]", "  [CLS]  text [PAD]", "Ⅻ ½ ﬁ ß İstanbul", "中文English混合，标点。",
             "\U00020001\U0002A700 CJK ext", "한국어 カタカナ", "x" * 101, "##ing", "$5^2 `code` ~tilde",
             "tab\tand\nnewline\r\n", "\u3000ideographic space", ""]
    for vocab_name in ("google_zh_vocab.txt", "google_uncased_en_vocab.txt"):
        vocab_path = os.path.join(data, "vocab", vocab_name)
        for lower in (True, False):
            reference = hf_reference(vocab_path, lower)
            ours = BertTokenizer(Vocab.load(vocab_path), do_lower_case=lower)
            for text in cases:
                assert ours.tokenize(text) == reference.tokenize(text), (vocab_name, lower, text)
