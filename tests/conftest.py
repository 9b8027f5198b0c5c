"""Shared fixtures: a tiny generated corpus, its word-level vocabulary, a tiny BERT config, and the
real data directory (``UER_DATA_DIR``) for the tests that use it."""

import json
import os
import random

import pytest

from uer.quickstart.synthetic import review, write_corpus, write_labelled

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

TINY_BERT = {"embedding": ["word", "pos", "seg"], "emb_size": 32, "hidden_size": 32, "feedforward_size": 64,
             "heads_num": 2, "layers_num": 2, "max_seq_length": 64, "dropout": 0.1,
             "target": ["mlm", "sp"], "data_processor": "bert"}


@pytest.fixture(scope="session")
def data_dir():
    path = os.environ.get("UER_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("UER_DATA_DIR is not set to the shared data directory (CI sets it to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A BERT-style corpus, labelled TSVs and a word-level vocabulary, generated offline."""
    root = tmp_path_factory.mktemp("tiny")
    rng = random.Random(3)
    corpus = root / "corpus.txt"
    write_corpus(str(corpus), documents=150, rng=rng)
    rows = [review(rng) for _ in range(1100)]
    write_labelled(str(root / "train.tsv"), rows[:1000])
    write_labelled(str(root / "dev.tsv"), rows[1000:1050])
    write_labelled(str(root / "test.tsv"), rows[1050:])
    write_labelled(str(root / "test_nolabel.tsv"), rows[1050:], with_labels=False)
    words = sorted({w for line in open(corpus, encoding="utf-8") for w in line.split()} |
                   {w for _, text in rows for w in text.split()})
    (root / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    (root / "tiny_bert.json").write_text(json.dumps(TINY_BERT), encoding="utf-8")
    return root
