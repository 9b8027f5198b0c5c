"""Processors build instances with the exact shape the collator relies on.

The corpora here use words ``w<n>`` that each occur once, so a token id tells where in the corpus
it came from (id = n + 5): that lets the tests check "B is the real continuation", "A and B were
swapped", "nothing was lost or reordered" exactly, not just statistically.
"""

from typing import List

import numpy as np
import pytest

from uer.data.processors import Packer, build_processor, truncate_seq_pair
from uer.data.tokenizers import build_tokenizer
from uer.errors import ConfigError, DataError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
N_WORDS = 20000


def write_vocab(path, specials=SPECIALS, n_words=N_WORDS) -> str:
    path.write_text("\n".join(list(specials) + [f"w{i}" for i in range(n_words)]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path_factory.mktemp("v") / "vocab.txt"))


def sentence_docs(rng, n_docs, min_sents=1, max_sents=8, min_len=2, max_len=7):
    """Documents as lists of sentence strings of unique words, and the running word counter."""
    docs, n = [], 0
    for d in range(n_docs):
        sentences = []
        for _ in range(int(rng.integers(min_sents, max_sents + 1))):
            k = int(rng.integers(min_len, max_len + 1))
            sentences.append(" ".join(f"w{i}" for i in range(n, n + k)))
            n += k
        docs.append((d + 1, sentences))
    assert n <= N_WORDS
    return docs


def doc_of(ids, docs_tokens) -> set:
    """Which documents (by index) the word ids belong to (word ids are unique and increasing, so
    a document is an id range)."""
    starts = [toks[0] for toks in docs_tokens]
    return {int(np.searchsorted(starts, t, side="right")) - 1 for t in ids}


def split_pair(src, seg_a_len):
    src = list(src)
    assert src[0] == CLS and src[seg_a_len - 1] == SEP and src[-1] == SEP
    assert src.count(SEP) == 2 and src.count(CLS) == 1
    return src[1:seg_a_len - 1], src[seg_a_len:-1]


def build(name, tokenizer, docs, seq_length=32, seed=0, **kw):
    proc = build_processor(name, tokenizer.vocab, seq_length, **kw)
    return proc, proc.build(proc.tokenize(docs, tokenizer), np.random.default_rng(seed))


# -- bert (NSP) ---------------------------------------------------------------------------------
def test_bert_nsp_structure_and_labels(tokenizer):
    docs = sentence_docs(np.random.default_rng(1), 100, min_sents=15, max_sents=25)
    docs_tokens = [[t for s in lines for t in tokenizer.encode(s)] for _, lines in docs]
    proc, instances = build("bert", tokenizer, docs, seq_length=32)
    assert proc.fields == ("seg_a_len", "label")
    labels = []
    for src, (seg_a_len, label) in instances:
        assert len(src) <= 32
        a, b = split_pair(src, seg_a_len)
        assert a and b
        assert len(doc_of(a, docs_tokens)) == 1 and len(doc_of(b, docs_tokens)) == 1
        if label == 0:   # actual next: same document, B after A
            assert doc_of(a, docs_tokens) == doc_of(b, docs_tokens) and max(a) < min(b)
        else:            # random next: another document of the block
            assert doc_of(a, docs_tokens) != doc_of(b, docs_tokens)
        labels.append(label)
    assert len(instances) > 300
    # One-sentence chunks always take a random B (and a random B hands its unused sentences to
    # the next chunk), so Google's scheme gives a little more than half random.
    assert 0.45 < np.mean(labels) < 0.65


def test_bert_short_seq_prob_gives_shorter_instances(tokenizer):
    docs = sentence_docs(np.random.default_rng(2), 150, min_sents=6)
    _, full = build("bert", tokenizer, docs, seq_length=64, short_seq_prob=0.0)
    _, short = build("bert", tokenizer, docs, seq_length=64, short_seq_prob=1.0)
    assert np.mean([len(s) for s, _ in short]) < 0.8 * np.mean([len(s) for s, _ in full])
    assert len(short) > len(full)


def test_bert_single_sentence_documents_pair_with_random_documents(tokenizer):
    docs = sentence_docs(np.random.default_rng(3), 30, min_sents=1, max_sents=1)
    _, instances = build("bert", tokenizer, docs)
    assert len(instances) == 30 and all(label == 1 for _, (_, label) in instances)


def test_bert_truncates_long_sentences_to_seq_length(tokenizer):
    docs = sentence_docs(np.random.default_rng(4), 40, min_sents=2, max_sents=3, min_len=30, max_len=60)
    _, instances = build("bert", tokenizer, docs, seq_length=16)
    assert instances and all(len(src) <= 16 for src, _ in instances)
    assert sum(len(src) == 16 for src, _ in instances) > len(instances) // 2


# -- albert (SOP) -------------------------------------------------------------------------------
def test_albert_sop_swaps_really_swap(tokenizer):
    docs = sentence_docs(np.random.default_rng(5), 200, min_sents=1)
    docs_tokens = [[t for s in lines for t in tokenizer.encode(s)] for _, lines in docs]
    _, instances = build("albert", tokenizer, docs, seq_length=32)
    labels = []
    for src, (seg_a_len, label) in instances:
        assert len(src) <= 32
        a, b = split_pair(src, seg_a_len)
        assert a and b and doc_of(a + b, docs_tokens).__len__() == 1   # B is never from elsewhere
        assert (max(a) < min(b)) if label == 0 else (max(b) < min(a))
        labels.append(label)
    assert 0.4 < np.mean(labels) < 0.6


# -- mlm ----------------------------------------------------------------------------------------
def line_docs(rng, n_docs, min_len=1, max_len=70):
    docs, n = [], 0
    for d in range(n_docs):
        k = int(rng.integers(min_len, max_len + 1))
        docs.append((d + 1, [" ".join(f"w{i}" for i in range(n, n + k))]))
        n += k
    return docs, n


def test_mlm_pieces_stay_within_documents(tokenizer):
    docs, _ = line_docs(np.random.default_rng(6), 60)
    proc, instances = build("mlm", tokenizer, docs, seq_length=16)
    assert not proc.sequential and proc.fields == ("seg_a_len",)
    pieces = []
    for src, (seg_a_len,) in instances:
        assert src[0] == CLS and src[-1] == SEP and seg_a_len == len(src) <= 16
        pieces.append(list(src[1:-1]))
    docs_tokens = [tokenizer.encode(lines[0]) for _, lines in docs]
    assert all(len(doc_of(p, docs_tokens)) == 1 for p in pieces)
    assert [t for p in pieces for t in p] == [t for d in docs_tokens for t in d]
    assert len(instances) == sum(-(-len(d) // 14) for d in docs_tokens)


def pack(proc, tokenizer, docs) -> List:
    packer = proc.packer()
    out = []
    for segment in proc.segments(proc.tokenize(docs, tokenizer)):
        out.extend(packer.feed(segment))
    return out + packer.flush()


def test_mlm_full_sentences_crosses_document_boundaries(tokenizer):
    docs, _ = line_docs(np.random.default_rng(7), 40)
    proc = build_processor("mlm", tokenizer.vocab, 16, full_sentences=True)
    assert proc.sequential
    instances = pack(proc, tokenizer, docs)
    assert all(len(src) == 16 for src, _ in instances[:-1])
    inner = [list(src[1:-1]) for src, _ in instances]
    assert all(src[0] == CLS and src[-1] == SEP and f == (len(src),) for src, f in instances)
    docs_tokens = [tokenizer.encode(lines[0]) for _, lines in docs]
    expected = [t for d in docs_tokens for t in d + [SEP]][:-1]   # [SEP] *between* documents
    assert [t for p in inner for t in p] == expected
    crossing = [p for p in inner if len(doc_of([t for t in p if t != SEP], docs_tokens)) > 1]
    assert crossing


# -- lm -----------------------------------------------------------------------------------------
def test_lm_concatenation_preserves_all_tokens_in_order(tokenizer):
    docs, _ = line_docs(np.random.default_rng(8), 50)
    proc = build_processor("lm", tokenizer.vocab, 16)
    assert proc.fields == ()
    instances = pack(proc, tokenizer, docs)
    assert all(len(src) == 17 for src, _ in instances[:-1]) and 2 <= len(instances[-1][0]) <= 17
    expected = [t for _, lines in docs for t in [CLS] + tokenizer.encode(lines[0]) + [SEP]]
    assert [int(t) for src, _ in instances for t in src] == expected[:sum(len(s) for s, _ in instances)]
    assert len(expected) - sum(len(s) for s, _ in instances) <= 1   # only a 1-token tail may go


def test_lm_drops_one_token_tail_and_keeps_two(tokenizer):
    proc = build_processor("lm", tokenizer.vocab, 8)
    for n_words, kept_tail in ((8, None), (9, 2)):   # [CLS] + words + [SEP] = 10 or 11 tokens
        docs = [(1, [" ".join(f"w{i}" for i in range(n_words))])]
        out = pack(proc, tokenizer, docs)
        assert len(out[0][0]) == 9
        assert (len(out) == 1) if kept_tail is None else (len(out[1][0]) == kept_tail)


def test_lm_needs_no_mask_token(tmp_path):
    vocab = write_vocab(tmp_path / "v.txt", specials=SPECIALS[:4])
    tok = build_tokenizer(name="bert", vocab_path=vocab)
    build_processor("lm", tok.vocab, 16)
    build_processor("cls", tok.vocab, 16)
    for name in ("bert", "albert", "mlm"):
        with pytest.raises(DataError, match=r"\[MASK\].*" + name):
            build_processor(name, tok.vocab, 16)


# -- cls ----------------------------------------------------------------------------------------
def test_cls_single_and_pair_with_longer_side_truncated_first(tokenizer):
    words = lambda a, b: " ".join(f"w{i}" for i in range(a, b))  # noqa: E731
    docs = [(1, [f"3\t{words(0, 5)}"]), (2, [f"0\t{words(0, 30)}"]),
            (3, [f"1\t{words(0, 4)}\t{words(100, 130)}"])]
    proc, instances = build("cls", tokenizer, docs, seq_length=12)
    (s1, f1), (s2, f2), (s3, f3) = instances
    assert list(s1) == [CLS, *range(5, 10), SEP] and f1 == (7, 3)
    assert len(s2) == 12 and list(s2[1:-1]) == list(range(5, 15)) and f2 == (12, 0)
    a, b = split_pair(s3, f3[0])
    assert f3[1] == 1 and len(s3) == 12 and a == list(range(5, 9)) and b == list(range(105, 110))


@pytest.mark.parametrize("line, problem", [("notalabel\tsome text", "not an integer"),
                                           ("-1\tw1", "not an integer"),
                                           ("just text", "found 1 tab-separated"),
                                           ("1\ta\tb\tc", "found 4 tab-separated")])
def test_cls_malformed_lines_name_file_and_line(tokenizer, line, problem):
    proc = build_processor("cls", tokenizer.vocab, 16, corpus_path="/data/x.tsv")
    with pytest.raises(DataError, match=f"/data/x.tsv, line 42: .*{problem}"):
        proc.tokenize([(42, [line])], tokenizer)


# -- shared -------------------------------------------------------------------------------------
def test_unknown_processor_and_small_seq_length(tokenizer):
    with pytest.raises(ConfigError, match="unknown data processor 'bret'.*Did you mean 'bert'"):
        build_processor("bret", tokenizer.vocab, 128)
    with pytest.raises(ConfigError, match="seq_length 7 is too small"):
        build_processor("bert", tokenizer.vocab, 7)


def reference_truncate(a, b, max_tokens, coins):
    """Google's token-by-token loop, driven by the same coin flips."""
    a, b, coins = list(a), list(b), iter(coins)
    while len(a) + len(b) > max_tokens:
        side = a if len(a) > len(b) else b
        del side[0 if next(coins) else -1]
    return a, b


def test_truncate_seq_pair_matches_googles_loop():
    rng = np.random.default_rng(9)
    for _ in range(200):
        a = list(range(int(rng.integers(0, 40))))
        b = list(range(100, 100 + int(rng.integers(1, 40))))
        max_tokens = int(rng.integers(2, 50))
        seed = int(rng.integers(1 << 30))
        got = truncate_seq_pair(a, b, max_tokens, np.random.default_rng(seed))
        excess = max(0, len(a) + len(b) - max_tokens)
        coins = np.random.default_rng(seed).random(excess) < 0.5
        assert got == reference_truncate(a, b, max_tokens, coins)
    assert truncate_seq_pair([1, 2, 3], [4], 3) == ([1, 2], [4])   # no rng: from the back


def test_packer_carries_remainder_and_separators():
    packer = Packer(4, lambda src: (src, ()), prefix=[CLS], suffix=[SEP], separator=[9])
    out = packer.feed(np.array([10, 11, 12])) + packer.feed(np.array([20, 21, 22, 23, 24]))
    out += packer.flush()
    assert [list(s) for s, _ in out] == [[CLS, 10, 11, 12, 9, SEP], [CLS, 20, 21, 22, 23, SEP],
                                         [CLS, 24, SEP]]
