"""The encoder-decoder processors (t5, bart, gsg, mt) and prefixlm: their published statistics
measured over many samples, their instance layout, the collate steps that build the decoder fields,
and pretrain.py's processor/model consistency check.

Words ``w<n>`` of the tiny vocabulary have id n + 5, so tokens can be traced exactly."""

import collections

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig
from uer.data.collator import PretrainCollator
from uer.data.dataset import IndexedDataset
from uer.data.noising import (BartNoiser, T5Noiser, infill, infilling_spans, poisson_span_lengths, span_corrupt,
                              t5_noise_mask, t5_span_counts)
from uer.data.preprocess import build_dataset
from uer.data.processors import build_processor
from uer.data.processors.chunks import sentence_chunks
from uer.data.processors.gsg import gap_count, rouge1_f1, select_gap_sentences
from uer.data.tokenizers import build_tokenizer
from uer.errors import ConfigError, DataError
from uer.layers.masks import build_attention_mask

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
N_WORDS = 3000
N_SENTINELS = 40
SENTINEL0 = 5 + N_WORDS


def write_vocab(path, sentinels=N_SENTINELS, words=N_WORDS, prefix="w") -> str:
    tokens = SPECIALS + [f"{prefix}{i}" for i in range(words)] + [f"[extra_id_{i}]" for i in range(sentinels)]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path_factory.mktemp("v") / "vocab.txt"))


def words(a, b):
    return " ".join(f"w{i}" for i in range(a, b))


def collate(tokenizer, dataset, noiser=None, n=None, epoch=0, targets=("lm",), tgt_vocab=None):
    items = [dataset[i] for i in range(n or len(dataset))]
    collator = PretrainCollator(tokenizer.vocab, list(targets), MaskingConfig(), 7, dataset.fields,
                                seq_length=int(dataset.meta["seq_length"]), max_length=512, noiser=noiser,
                                tgt_vocab=tgt_vocab)
    return collator(items, list(range(len(items))), epoch)


# -- T5 span corruption ------------------------------------------------------------------------
def test_t5_noise_fraction_and_mean_span_over_many_samples():
    rng = np.random.default_rng(0)
    noise_total = tokens_total = spans_total = 0
    for _ in range(2000):
        length = int(rng.integers(20, 300))
        mask = t5_noise_mask(length, 0.15, 3.0, rng)
        assert mask.shape == (length,) and not mask[0]           # kept-first, as T5
        starts = mask & ~np.concatenate([[False], mask[:-1]])
        noise_total += int(mask.sum())
        tokens_total += length
        spans_total += int(starts.sum())
    assert abs(noise_total / tokens_total - 0.15) < 0.005
    assert abs(noise_total / spans_total - 3.0) < 0.1


def test_t5_span_counts_follow_t5_rounding():
    assert t5_span_counts(100, 0.15, 3.0) == (15, 5)
    assert t5_span_counts(512, 0.15, 3.0) == (77, 26)
    assert t5_span_counts(4, 0.15, 3.0) == (1, 1)               # at least one noise token and span


def test_span_corrupt_uses_sentinels_in_order_and_ends_with_a_final_sentinel():
    tokens = np.arange(100, 120)
    noise = np.zeros(20, bool)
    noise[[2, 3, 7, 12, 13, 14]] = True
    sentinels = [900, 901, 902, 903]
    inputs, targets = span_corrupt(tokens, noise, sentinels)
    assert inputs.tolist() == [100, 101, 900, 104, 105, 106, 901, 108, 109, 110, 111, 902, 115, 116, 117, 118, 119]
    assert targets.tolist() == [900, 102, 103, 901, 107, 902, 112, 113, 114, 903]


def test_t5_noiser_reconstructs_the_text_and_is_keyed_by_seed_epoch_index(tokenizer):
    noiser = T5Noiser(tokenizer.vocab, seq_length=128, seed=3)
    seqs = [np.array([CLS, *range(5, 5 + n), SEP]) for n in (126, 60, 9)]
    srcs, tgts = noiser(seqs, None, [0, 1, 2], epoch=0)
    for seq, src, tgt in zip(seqs, srcs, tgts):
        assert src[0] == CLS and src[-1] == SEP and tgt[-1] == SEP
        in_sentinels = [t for t in src if t >= SENTINEL0]
        k = len(in_sentinels)
        assert in_sentinels == list(range(SENTINEL0, SENTINEL0 + k))              # in order
        assert [t for t in tgt if t >= SENTINEL0] == list(range(SENTINEL0, SENTINEL0 + k + 1))  # + final
        # Filling each sentinel of the input with its span of the target gives back the text.
        spans, current = {}, None
        for t in tgt[:-1]:
            if t >= SENTINEL0:
                current = t
                spans[current] = []
            else:
                spans[current].append(t)
        rebuilt = [x for t in src for x in (spans.get(t, []) if t >= SENTINEL0 else [t])]
        assert rebuilt == list(seq)
    again, _ = noiser(seqs, None, [0, 1, 2], epoch=0)
    later, _ = noiser(seqs, None, [0, 1, 2], epoch=1)
    alone, _ = noiser(seqs[1:2], None, [1], epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(srcs, again))
    assert np.array_equal(alone[0], srcs[1])                                      # batch-independent
    assert not np.array_equal(later[0], srcs[0])


def test_t5_needs_sentinels_in_the_vocabulary(tmp_path):
    bare = build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path / "v.txt", sentinels=0))
    with pytest.raises(ConfigError, match=r"sentinel tokens \[extra_id_0\] \.\. \[extra_id_6\].*v\.txt.*append them"):
        build_processor("t5", bare.vocab, 128)
    few = build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path / "w.txt", sentinels=3))
    with pytest.raises(ConfigError, match=r"\[extra_id_3\] missing.*needs 7"):
        build_processor("t5", few.vocab, 128)


def test_t5_dataset_and_decoder_fields(tokenizer, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(words(i * 50, i * 50 + 50) for i in range(20)) + "\n")
    build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "t5", 32, show_progress=False)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert dataset.meta["noising"] == {"kind": "t5", "noise_density": 0.15, "mean_noise_span_length": 3.0}
    from uer.data.noising import build_noiser
    batch = collate(tokenizer, dataset, build_noiser(dataset.meta, tokenizer.vocab, 7))
    tgt_in, tgt_out, tgt_seg = batch["tgt_in"], batch["tgt_out"], batch["tgt_seg"]
    assert tgt_in.shape == tgt_out.shape == tgt_seg.shape
    lengths = tgt_seg.sum(1)
    assert (tgt_in[:, 0] == CLS).all()
    for i in range(len(lengths)):
        n = int(lengths[i])
        assert tgt_in[i, 1:n].tolist() == tgt_out[i, :n - 1].tolist()            # shifted right
        assert int(tgt_out[i, n - 1]) == SEP and int(tgt_out[i, 0]) == SENTINEL0
        assert (tgt_out[i, n:] == PAD).all()


# -- BART text infilling + sentence permutation ------------------------------------------------
def test_bart_infilling_statistics_over_many_samples():
    rng = np.random.default_rng(1)
    masked = total = 0
    lengths = []
    for _ in range(3000):
        n = int(rng.integers(30, 200))
        spans = infilling_spans(n, 0.3, 3.0, rng)
        assert sum(k for _, k in spans) == round(n * 0.3)
        starts = [s for s, _ in spans]
        assert starts == sorted(starts)
        for (s1, k1), (s2, _) in zip(spans, spans[1:]):
            assert s2 > s1 + k1                                   # a kept token between spans
        out = infill(np.arange(100, 100 + n), spans, MASK)
        assert int((out == MASK).sum()) == len(spans)             # one mask per span
        assert len(out) == n - sum(k for _, k in spans) + len(spans)
        masked += sum(k for _, k in spans)
        total += n
        lengths.extend(k for _, k in spans)
    assert abs(masked / total - 0.3) < 0.01
    assert 0 in lengths                                           # zero-length insertions happen
    # The lengths themselves: Poisson(3) draws, the last cut to fit (a long run, so that stopping
    # at the budget does not bias them).
    drawn = poisson_span_lengths(60000, 3.0, rng)
    assert sum(drawn) == 60000
    lengths = np.array(drawn[:-1])
    assert abs(lengths.mean() - 3.0) < 0.1
    assert abs((lengths == 0).mean() - np.exp(-3.0)) < 0.01       # Poisson(3): P(0) = 0.0498
    assert abs((lengths == 3).mean() - 27 * np.exp(-3.0) / 6) < 0.015


def test_bart_zero_length_span_inserts_a_mask():
    out = infill(np.arange(10, 20), [(2, 0), (5, 2)], MASK)
    assert out.tolist() == [10, 11, MASK, 12, 13, 14, MASK, 17, 18, 19]


def bart_corpus(path, n_docs=30, rng=None):
    rng = rng or np.random.default_rng(5)
    lines, n = [], 0
    for _ in range(n_docs):
        for _ in range(int(rng.integers(3, 7))):
            k = int(rng.integers(3, 8))
            lines.append(words(n, n + k))
            n += k
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_bart_permutes_sentences_and_keeps_the_multiset(tokenizer, tmp_path):
    corpus = bart_corpus(tmp_path / "c.txt")
    docs = [[[int(w[1:]) + 5 for w in line.split()] for line in block.split("\n") if line]
            for block in open(corpus).read().split("\n\n") if block.strip()]
    sentence_of = {s[0]: tuple(s) for doc in docs for s in doc}
    build_dataset(corpus, str(tmp_path / "ds"), tokenizer, "bart", 40, show_progress=False)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert dataset.streams == ["src", "tgt"] and dataset.meta["noising"]["kind"] == "bart"
    changed = 0
    for i in range(len(dataset)):
        src, tgt = list(dataset[i]["src"]), list(dataset[i]["tgt"])
        assert src[0] == CLS and src[-1] == SEP and tgt[-1] == SEP
        assert sorted(src[1:-1]) == sorted(tgt[:-1])
        # Split both into sentences (each starts at a known first word): the same multiset.
        def split(ids):
            out, pos = [], 0
            while pos < len(ids):
                sentence = sentence_of[ids[pos]]
                assert tuple(ids[pos:pos + len(sentence)]) == sentence
                out.append(sentence)
                pos += len(sentence)
            return out
        permuted, original = split(src[1:-1]), split(tgt[:-1])
        assert collections.Counter(permuted) == collections.Counter(original)
        assert original == sorted(original)                       # the target keeps document order
        changed += permuted != original
    assert changed > len(dataset) // 2


def test_bart_collate_masks_the_encoder_input_only(tokenizer, tmp_path):
    build_dataset(bart_corpus(tmp_path / "c.txt"), str(tmp_path / "ds"), tokenizer, "bart", 40, show_progress=False)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    batch = collate(tokenizer, dataset, BartNoiser(tokenizer.vocab, seed=7))
    assert (batch["src"] == MASK).any() and not (batch["tgt_out"] == MASK).any()
    for i in range(len(dataset)):
        tgt = dataset[i]["tgt"]
        assert batch["tgt_out"][i, :len(tgt)].tolist() == tgt.tolist()


# -- PEGASUS gap sentences ---------------------------------------------------------------------
def test_rouge1_f1():
    assert rouge1_f1([1, 2, 3], [1, 2, 3]) == 1.0
    assert rouge1_f1([1, 1, 2], [1, 3]) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert rouge1_f1([4], [1, 2]) == 0.0


def test_gsg_selects_the_sentences_with_the_highest_rouge_against_the_rest():
    # Sentences 1 and 3 repeat the document's common words; 0, 2, 4 are off-topic.
    chunk = [[50, 51, 52], [10, 11, 12, 13], [60, 61], [10, 11, 12, 14], [70, 71, 72], [10, 99]]
    scores = [rouge1_f1(s, [t for j, o in enumerate(chunk) if j != i for t in o]) for i, s in enumerate(chunk)]
    assert np.argsort(scores)[::-1][:2].tolist() in ([1, 3], [3, 1])
    rng = np.random.default_rng(0)
    assert select_gap_sentences(chunk, 0.3, "rouge", rng) == [1, 3]            # round(0.3 * 6) = 2
    assert select_gap_sentences(chunk, 0.5, "rouge", rng) == [1, 3, 5]
    assert select_gap_sentences(chunk, 0.3, "lead", rng) == [0, 1]
    draws = {tuple(select_gap_sentences(chunk, 0.3, "random", np.random.default_rng(s))) for s in range(50)}
    assert len(draws) > 5 and all(len(d) == 2 and list(d) == sorted(d) for d in draws)


def test_gsg_ratio_over_many_chunks_and_instance_layout(tokenizer, tmp_path):
    corpus = bart_corpus(tmp_path / "c.txt", n_docs=120)   # < 3000 words: no [UNK]
    docs = [(0, [line for line in block.split("\n") if line]) for block in open(corpus).read().split("\n\n")
            if block.strip()]
    for strategy, ratio in (("rouge", 0.3), ("lead", 0.3), ("random", 0.3), ("rouge", 0.5)):
        processor = build_processor("gsg", tokenizer.vocab, 64, options={"sentence_selection_strategy": strategy,
                                                                         "gap_sentence_ratio": ratio,
                                                                         "tgt_seq_length": 24})
        documents = processor.tokenize(docs, tokenizer)
        chunks = [c for d in documents for c in sentence_chunks(d, 62) if len(c) >= 2]
        instances = processor.build(documents, np.random.default_rng(0))
        assert len(instances) == len(chunks)
        masked = 0
        for (streams, _), chunk in zip(instances, chunks):
            src, tgt = streams["src"].tolist(), streams["tgt"].tolist()
            m = src.count(MASK)
            assert m == gap_count(len(chunk), ratio) and 1 <= m < len(chunk)
            assert src[0] == CLS and src[-1] == SEP and tgt[-1] == SEP and len(tgt) <= 24
            # Unmasked sentences stay in place; the target is the masked ones in document order, cut.
            kept = [t for s in chunk if s[0] in src for t in s]
            assert [t for t in src[1:-1] if t != MASK] == kept
            masked_text = [t for s in chunk if s[0] not in src for t in s]
            assert tgt[:-1] == masked_text[:23]
            if strategy == "lead":
                assert src[1:1 + m] == [MASK] * m
            masked += m
        fraction = masked / sum(len(c) for c in chunks)
        assert abs(fraction - ratio) < 0.06, (strategy, ratio, fraction)
    with pytest.raises(ConfigError, match="--sentence_selection_strategy 'best' is not one of rouge, lead, random"):
        build_processor("gsg", tokenizer.vocab, 64, options={"sentence_selection_strategy": "best"})


# -- MT pairs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tgt_tokenizer(tmp_path_factory):
    return build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path_factory.mktemp("t") / "tgt.txt",
                                                               sentinels=0, words=500, prefix="z"))


def test_mt_reads_pairs_with_a_separate_target_vocabulary(tokenizer, tgt_tokenizer, tmp_path):
    corpus = tmp_path / "pairs.txt"
    corpus.write_text("".join(f"{words(i, i + 5)}\t{' '.join(f'z{j}' for j in range(i, i + 3 + i % 40))}\n"
                              for i in range(100)))
    build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "mt", 16, tgt_seq_length=12, show_progress=False,
                  processor_options={"tgt_tokenizer": tgt_tokenizer})
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert len(dataset) == 100 and dataset.meta["tgt_tokenizer"]["vocab_size"] == len(tgt_tokenizer.vocab)
    for i in range(100):
        src, tgt = dataset[i]["src"].tolist(), dataset[i]["tgt"].tolist()
        assert src == [CLS, *range(i + 5, i + 10), SEP]
        expected = list(range(i + 5, i + 5 + 3 + i % 40))[:11]
        assert tgt == expected + [SEP]                        # z<j> has id j + 5 in the target vocabulary
    batch = collate(tokenizer, dataset, tgt_vocab=tgt_tokenizer.vocab)
    assert batch["tgt_in"].shape[1] == 16 and (batch["tgt_in"][:, 0] == CLS).all()


def test_mt_line_without_a_tab_names_file_and_line(tokenizer, tgt_tokenizer, tmp_path):
    corpus = tmp_path / "pairs.txt"
    corpus.write_text("w1 w2\tz1\n\nw3 w4 z5\nw5\tz6\n")
    with pytest.raises(DataError, match=r"pairs\.txt, line 3: expected source and target separated by one tab, "
                                        r"found no tab"):
        build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "mt", 16, show_progress=False,
                      processor_options={"tgt_tokenizer": tgt_tokenizer})
    assert not (tmp_path / "ds").exists()
    corpus.write_text("w1\tz1\tz2\n")
    with pytest.raises(DataError, match=r"line 1: .*found 2 tabs"):
        build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "mt", 16, show_progress=False,
                      processor_options={"tgt_tokenizer": tgt_tokenizer})
    with pytest.raises(ConfigError, match="--data_processor mt needs the target side's vocabulary"):
        build_processor("mt", tokenizer.vocab, 16)
    with pytest.raises(ConfigError, match="--tgt_tokenizer is an option of the mt processor"):
        build_processor("t5", tokenizer.vocab, 16, options={"tgt_tokenizer": tgt_tokenizer})


# -- prefix LM -----------------------------------------------------------------------------------
def test_prefixlm_segments_labels_and_mask(tokenizer, tmp_path):
    corpus = tmp_path / "p.txt"
    corpus.write_text(f"{words(0, 4)}\t{words(10, 13)}\n{words(20, 22)}\t{words(30, 50)}\n")
    build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "prefixlm", 16, show_progress=False)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    first = dataset[0]
    assert first["src"].tolist() == [CLS, 5, 6, 7, 8, SEP, 15, 16, 17, SEP] and first["seg_a_len"] == 6
    assert len(dataset[1]["src"]) == 17                           # seq_length + 1 (the last only a label)
    batch = collate(tokenizer, dataset)
    seg, labels = batch["seg"][0], batch["lm_labels"][0]
    assert seg[:9].tolist() == [1] * 6 + [2] * 3 and (seg[9:] == 0).all()
    assert labels[:9].tolist() == [-100] * 5 + [15, 16, 17, SEP]   # the prefix is not predicted
    assert batch["src"].shape[1] >= 16 and batch["seg"][1, :16].tolist() == [1] * 4 + [2] * 12
    mask = build_attention_mask("causal_with_prefix", batch["seg"][:1]).attn_mask[0, 0]
    assert mask[0, :6].all() and not mask[0, 6:].any()            # prefix: bidirectional, no peeking
    assert mask[7, :8].all() and not mask[7, 8:].any()            # continuation: causal


# -- pretrain.py: processor / model / target consistency -------------------------------------------
@pytest.mark.parametrize("changes, processor, message", [
    ({}, "mlm", r"has a decoder \(\"decoder\": \"transformer\"\).*built by the 'mlm' processor.*--data_processor "
                r"(bart, gsg, mt, t5|.*t5)"),
    ({"decoder": "", "tgt_embedding": []}, "t5", "built by the 't5' processor for an encoder-decoder model, but the "
                                                 "model config has no decoder"),
    ({"target": ["mlm"]}, "bart", r"the 'lm' target alone; the model config's targets are \['mlm'\]"),
])
def test_pretrain_refuses_a_processor_that_does_not_fit_the_model(changes, processor, message):
    from uer.cli.pretrain import check_model_fits_processor
    from uer.config import ModelConfig
    base = dict(embedding=["word"], tgt_embedding=["word"], decoder="transformer", target=["lm"], hidden_size=32,
                emb_size=32, heads_num=2, feedforward_size=64, layers_num=1)
    config = ModelConfig(**{**base, **changes})
    with pytest.raises(DataError, match=message):
        check_model_fits_processor(config, processor, "ds")


def test_pretrain_refuses_prefixlm_without_the_prefix_mask():
    from uer.cli.pretrain import check_model_fits_processor
    from uer.config import ModelConfig
    config = ModelConfig(embedding=["word"], target=["lm"], mask="causal")
    with pytest.raises(DataError, match="set \"mask\": \"causal_with_prefix\""):
        check_model_fits_processor(config, "prefixlm", "ds")
    check_model_fits_processor(ModelConfig(embedding=["word"], target=["lm"], mask="causal_with_prefix"),
                               "prefixlm", "ds")


def test_decoder_fields_feed_the_seq2seq_model(tokenizer):
    """The collated fields have the names and shapes the encoder-decoder model's forward takes."""
    from uer.config import ModelConfig
    from uer.models import build_model
    config = ModelConfig(embedding=["word", "pos"], tgt_embedding=["word", "pos"], decoder="transformer",
                         target=["lm"], hidden_size=32, emb_size=32, heads_num=2, feedforward_size=64, layers_num=1,
                         max_seq_length=64, vocab_size=len(tokenizer.vocab), tie_weights=True, share_embedding=True)
    model = build_model(config)
    noiser = T5Noiser(tokenizer.vocab, seq_length=32, seed=0)

    class Items:
        fields, meta = [], {"seq_length": 32}

        def __getitem__(self, i):
            return {"src": np.array([CLS, *range(5 + i, 35 + i), SEP])}

        def __len__(self):
            return 4
    batch = collate(tokenizer, Items(), noiser)
    out = model(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
