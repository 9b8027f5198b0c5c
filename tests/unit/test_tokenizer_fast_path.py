"""BertTokenizer's fast path (one ``str.translate`` for cleaning + CJK spacing, ids cached per
whitespace word) gives exactly what the rule-by-rule functions give."""

import pytest

from uer.data import tokenizers
from uer.data.tokenizers import BertTokenizer, _clean_text, _space_cjk
from uer.data.vocab import Vocab

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def code_points():
    """Every BMP code point, and every 61st one beyond (the CJK extension blocks included)."""
    yield from range(0x10000)
    yield from range(0x10000, 0x110000, 61)


def test_translate_table_is_clean_then_space_cjk_for_every_character():
    for cp in code_points():
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:      # lone surrogates do not occur in decoded text
            continue
        assert ch.translate(tokenizers._CLEAN_AND_SPACE) == _space_cjk(_clean_text(ch)), hex(cp)


@pytest.fixture()
def tokenizer():
    words = ["hello", "world", "##s", "un", "##aff", "##able", "cafe", ",", "!", "中", "文", "é"]
    return BertTokenizer(Vocab(SPECIALS + words), do_lower_case=True)


TEXTS = ["Hello worlds!", "unaffable, CAFÉ", "中文，中 文", "[SEP]hello[MASK] xyz", "\x00a\ufffd\tb\u3000中",
         "hello hello hello", "", "  ", "e\u0301 café"]


def test_encode_is_the_ids_of_tokenize_cold_and_warm(tokenizer):
    for _ in range(2):     # the second pass reads every word from the caches
        for text in TEXTS:
            assert tokenizer.encode(text) == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)), text


def test_caches_stay_bounded_and_correct_when_full(tokenizer, monkeypatch):
    monkeypatch.setattr(BertTokenizer, "_CACHE_SIZE", 3)
    expected = {text: [tokenizer.vocab.token_to_id(t) if t in tokenizer.vocab else tokenizer.vocab.unk_id
                       for t in tokenizer.tokenize(text)] for text in TEXTS}
    for text in TEXTS * 3:
        assert tokenizer.encode(text) == expected[text]
        assert len(tokenizer._id_cache) <= 3 and len(tokenizer._cache) <= 3


def test_a_partly_cached_line_is_not_doubled(tokenizer):
    tokenizer.encode("hello")                     # "hello" cached, "world" not: the fast pass stops midway
    hello, world = tokenizer.vocab.token_to_id("hello"), tokenizer.vocab.token_to_id("world")
    assert tokenizer.encode("hello world hello") == [hello, world, hello]


def test_pickled_tokenizer_starts_with_empty_caches(tokenizer):
    import pickle
    tokenizer.encode("hello world")
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy._cache == {} and copy._id_cache == {}
    assert copy.encode("hello world") == tokenizer.encode("hello world")
