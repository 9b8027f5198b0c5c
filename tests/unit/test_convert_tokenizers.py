"""Tokenizer parity for converted models: our byte-level BPE (GPT-2 / RoBERTa vocab.json + merges.txt)
gives the same ids as transformers' GPT2Tokenizer, on real English and Chinese text and on hard
cases.  (WordPiece parity with BertTokenizer is in test_tokenizers.py.)"""

import os
import pickle

import pytest

T = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("regex")

from uer.data.bpe import ByteLevelBpeTokenizer  # noqa: E402

HARD = ["Hello<|endoftext|>world", "  leading and trailing  ", "\n\n tabs\tand\r\nnewlines \n",
        "it's they're we'll I'd you've", "3.14159 and 1,000,000 ½ ², x²", "ÿ é e\u0301 ß Æ ø",
        "emoji 😀👍🏽 and 🇨🇳", "中文，标点。混合 English text！", "日本語のテキスト", "한국어 텍스트",
        "   ", "", "a" * 300, "<|endoftext|><|endoftext|>", "URL https://example.com/a?b=c&d=e#f"]


def train(directory, lines, vocab_size):
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(directory))
    return ByteLevelBpeTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt")), \
        T.GPT2Tokenizer.from_pretrained(str(directory))


def assert_same_ids(ours, theirs, texts):
    bad = [t for t in texts if ours.encode(t) != theirs(t, add_special_tokens=False)["input_ids"]]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, first: {bad[0][:120]!r}"


def test_bpe_parity_on_hard_cases(tmp_path):
    lines = HARD * 3 + ["the quick brown fox jumps over the lazy dog's back"] * 5
    ours, theirs = train(tmp_path, lines, 400)
    assert_same_ids(ours, theirs, HARD)
    assert ours.decode(ours.encode(HARD[6])) == HARD[6]
    clone = pickle.loads(pickle.dumps(ours))
    assert clone.encode(HARD[7]) == ours.encode(HARD[7]) and clone.fingerprint() == ours.fingerprint()


def test_bpe_parity_on_real_text(tmp_path, data_dir):
    def read(*parts, limit, column=None):
        with open(os.path.join(data_dir, *parts), encoding="utf-8") as f:
            rows = f.read().splitlines()
        if column is not None:
            rows = [r.split("\t")[column] for r in rows[1:]]
        return rows[:limit]
    training = read("en", "sst2", "train.tsv", limit=3000, column=1) + \
        read("en", "wikitext-2", "valid.txt", limit=2000) + read("zh", "corpora", "chnsenticorp.txt", limit=1500)
    ours, theirs = train(tmp_path, training, 3000)
    texts = read("en", "sst2", "dev.tsv", limit=872, column=1) + read("en", "wikitext-2", "test.txt", limit=800) + \
        read("zh", "book_review", "dev.tsv", limit=300, column=1) + \
        read("zh", "corpora", "CLUECorpusSmall_sampled.txt", limit=30)
    assert_same_ids(ours, theirs, texts)
