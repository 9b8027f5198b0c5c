"""Vocab: loading rules, special-token detection, continuation flags, fingerprints, errors."""

import os

import numpy as np
import pytest

from uer.data.vocab import BERT_SPECIALS, ROBERTA_SPECIALS, SpecialTokens, Vocab
from uer.errors import DataError

BERT_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "##at", "un", "a"]


def real_data_dir() -> str:
    path = os.environ.get("UER_DATA_DIR")
    if not path:
        pytest.skip("UER_DATA_DIR not set (point it at shared/data to run tests on real data)")
    return path


def write_lines(path, tokens, newline="\n") -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(t + newline for t in tokens))
    return str(path)


# ---------------------------------------------------------------------- loading

def test_load_round_trip_and_lookup(tmp_path):
    vocab = Vocab.load(write_lines(tmp_path / "v.txt", BERT_TOKENS))
    assert vocab.tokens == BERT_TOKENS
    assert len(vocab) == len(BERT_TOKENS)
    assert "cat" in vocab and "dog" not in vocab
    assert vocab.token_to_id("cat") == 6
    assert vocab.id_to_token(6) == "cat"
    assert vocab.token_to_id("dog") == vocab.unk_id == 1
    assert vocab.path == str(tmp_path / "v.txt")


def test_load_strips_only_the_line_end(tmp_path):
    # CRLF files load like LF files; spaces and tabs inside/around a token are part of it (as HF).
    tokens = ["[PAD]", "[UNK]", " ", "a ", "\tb"]
    crlf = Vocab.load(write_lines(tmp_path / "crlf.txt", tokens, newline="\r\n"))
    lf = Vocab.load(write_lines(tmp_path / "lf.txt", tokens))
    assert crlf.tokens == lf.tokens == tokens


def test_load_drops_utf8_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff[PAD]\n[UNK]\n[CLS]\n".encode("utf-8"))
    vocab = Vocab.load(str(path))
    assert vocab.pad_id == 0 and vocab.tokens[0] == "[PAD]"


def test_duplicate_tokens_keep_first_id(tmp_path):
    vocab = Vocab.load(write_lines(tmp_path / "v.txt", ["[PAD]", "[UNK]", "x", "y", "x"]))
    assert len(vocab) == 5  # positions of later tokens are unchanged
    assert vocab.token_to_id("x") == 2
    assert vocab.id_to_token(4) == "x"


def test_missing_empty_and_bad_files(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="nope.txt.*build_vocab"):
        Vocab.load(missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        Vocab.load(str(empty))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        Vocab.load(str(blank))
    with pytest.raises(DataError, match="directory"):
        Vocab.load(str(tmp_path))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("[PAD]\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        Vocab.load(str(latin1))
    with pytest.raises(DataError):
        Vocab([])


def test_id_to_token_range():
    vocab = Vocab(BERT_TOKENS)
    with pytest.raises(IndexError):
        vocab.id_to_token(len(BERT_TOKENS))
    with pytest.raises(IndexError):
        vocab.id_to_token(-1)  # no silent Python negative indexing
    assert vocab.id_to_token(np.int64(5)) == "the"


# ---------------------------------------------------------------------- special tokens

def test_bert_special_detection():
    vocab = Vocab(BERT_TOKENS)
    assert vocab.special == BERT_SPECIALS
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (0, 1, 2, 3, 4)
    assert vocab.special_ids == [0, 1, 2, 3, 4]
    vocab.require(purpose="MLM")  # all present: no error


def test_roberta_special_detection():
    vocab = Vocab(["<s>", "<pad>", "</s>", "<unk>", "\u2581the", "cat", "<mask>"])
    assert vocab.special == ROBERTA_SPECIALS
    assert (vocab.cls_id, vocab.pad_id, vocab.sep_id, vocab.unk_id, vocab.mask_id) == (0, 1, 2, 3, 6)
    assert vocab.special_ids == [0, 1, 2, 3, 6]
    assert vocab.token_to_id("dog") == 3


def test_no_specials_uses_bert_names_and_require_reports_them():
    vocab = Vocab(["a", "b", "c"], path="plain.txt")
    assert vocab.special == BERT_SPECIALS
    assert vocab.pad_id is None and vocab.mask_id is None and vocab.unk_id is None
    assert vocab.special_ids == []
    with pytest.raises(DataError, match="not in vocabulary plain.txt"):
        vocab.token_to_id("zzz")  # no unk to fall back on
    assert vocab.token_to_id("b") == 1


def test_require_names_missing_tokens_purpose_and_fix():
    vocab = Vocab(["[UNK]", "[CLS]", "[SEP]", "x"], path="/data/v.txt")
    vocab.require(("cls", "sep", "unk"), purpose="classification")  # fine
    with pytest.raises(DataError) as e:
        vocab.require(purpose="masked language modelling")
    msg = str(e.value)
    assert "/data/v.txt" in msg and "[PAD]" in msg and "[MASK]" in msg
    assert "[CLS]" not in msg  # present tokens are not listed
    assert "masked language modelling" in msg and "scripts/build_vocab.py" in msg
    with pytest.raises(ValueError):
        vocab.require(("bos",))


def test_explicit_specials_override_detection():
    custom = SpecialTokens(pad="<p>", unk="<u>", cls="<c>", sep="<e>", mask="<m>")
    vocab = Vocab(["<p>", "<u>", "[CLS]", "<c>", "<e>", "<m>", "x"], special=custom)
    assert vocab.cls_id == 3 and vocab.unk_id == 1
    assert vocab.token_to_id("[nothing]") == 1
    assert 2 not in vocab.special_ids  # "[CLS]" is an ordinary token here


# ---------------------------------------------------------------------- continuation flags

def test_is_continuation_wordpiece():
    vocab = Vocab(BERT_TOKENS + ["##", "\u2581x"])
    expected = [t.startswith("##") and len(t) > 2 for t in vocab.tokens]
    assert vocab.continuation_style == "wordpiece"
    assert vocab.is_continuation.dtype == np.bool_
    assert vocab.is_continuation.tolist() == expected
    with pytest.raises(ValueError):  # shared array: read-only
        vocab.is_continuation[0] = True


def test_is_continuation_sentencepiece():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\u2581the", "s", "\u2581c", "at", "\u2581", ","]
    vocab = Vocab(tokens)
    assert vocab.continuation_style == "spm"
    assert vocab.is_continuation.tolist() == [False] * 5 + [False, True, False, True, False, True]


def test_is_continuation_plain():
    vocab = Vocab(["[PAD]", "[UNK]", "a", "b"])
    assert vocab.continuation_style == "none"
    assert not vocab.is_continuation.any() and len(vocab.is_continuation) == 4


# ---------------------------------------------------------------------- fingerprint and save

def test_fingerprint_depends_on_content_not_path(tmp_path):
    a = Vocab.load(write_lines(tmp_path / "a.txt", BERT_TOKENS))
    (tmp_path / "sub").mkdir()
    b = Vocab.load(write_lines(tmp_path / "sub" / "b.txt", BERT_TOKENS, newline="\r\n"))
    c = Vocab.load(write_lines(tmp_path / "c.txt", BERT_TOKENS + ["extra"]))
    d = Vocab.load(write_lines(tmp_path / "d.txt", list(reversed(BERT_TOKENS))))
    assert a.fingerprint() == b.fingerprint() == Vocab(BERT_TOKENS).fingerprint()
    assert len(a.fingerprint()) == 64
    assert len({a.fingerprint(), c.fingerprint(), d.fingerprint()}) == 3


def test_save_round_trip_and_no_leftovers(tmp_path):
    vocab = Vocab(BERT_TOKENS + [" spaced ", "中"])
    out = tmp_path / "deep" / "dir" / "vocab.txt"
    vocab.save(str(out))
    assert os.listdir(out.parent) == ["vocab.txt"]  # the temporary file was renamed away
    again = Vocab.load(str(out))
    assert again.tokens == vocab.tokens and again.fingerprint() == vocab.fingerprint()
    with pytest.raises(DataError, match="line break"):
        Vocab(["a", "b\nc"]).save(str(tmp_path / "bad.txt"))
    assert not (tmp_path / "bad.txt").exists()


# ---------------------------------------------------------------------- SentencePiece

def _tiny_spm(tmp_path, **options) -> str:
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    words = ["the cat sat on the mat", "a dog ran in the park", "cats and dogs are pets",
             "the sun is hot today", "we like to read books"]
    corpus.write_text("\n".join(words * 20) + "\n", encoding="utf-8")
    prefix = str(tmp_path / "tiny")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=prefix, vocab_size=30,
                                   minloglevel=2, num_threads=1, **options)
    return prefix + ".model"


def test_from_spm_default_model_is_roberta_style(tmp_path):
    import sentencepiece as spm

    path = _tiny_spm(tmp_path)
    sp = spm.SentencePieceProcessor(model_file=path)
    vocab = Vocab.from_spm(path)
    assert vocab.tokens == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert vocab.special.cls == "<s>" and vocab.cls_id == sp.bos_id()
    assert vocab.unk_id == sp.unk_id() and vocab.sep_id == sp.eos_id()
    assert vocab.pad_id is None and vocab.mask_id is None  # the default model has neither
    assert vocab.continuation_style == "spm"
    assert vocab.path == path


def test_from_spm_with_bert_specials(tmp_path):
    path = _tiny_spm(tmp_path, pad_id=0, unk_id=1, pad_piece="[PAD]", unk_piece="[UNK]", bos_id=-1,
                     eos_id=-1, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])
    vocab = Vocab.from_spm(path)
    assert vocab.special == BERT_SPECIALS
    assert vocab.special_ids == [0, 1, 2, 3, 4]
    vocab.require(purpose="MLM")


def test_from_spm_missing_or_corrupt(tmp_path):
    with pytest.raises(DataError, match="missing.model"):
        Vocab.from_spm(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="bad.model"):
        Vocab.from_spm(str(bad))


# ---------------------------------------------------------------------- real vocabularies

@pytest.mark.parametrize("name, size", [("google_zh_vocab.txt", 21128),
                                        ("google_uncased_en_vocab.txt", 30522)])
def test_google_vocabularies(name, size):
    vocab = Vocab.load(os.path.join(real_data_dir(), "vocab", name))
    assert len(vocab) == size
    assert vocab.special == BERT_SPECIALS
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (0, 100, 101, 102, 103)
    assert vocab.continuation_style == "wordpiece"
    assert int(vocab.is_continuation.sum()) == sum(t.startswith("##") and len(t) > 2 for t in vocab.tokens)
    vocab.require(purpose="BERT pretraining")
