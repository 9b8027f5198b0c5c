"""Chinese whole-word masking as in UER-py (issue 13, item 2): preprocess.py --whole_word_masking
segments words with jieba (user dictionary optional) and stores the boundaries in the dataset; the
collator masks whole words from them, at the configured fraction of tokens; a Chinese
character-level dataset without boundaries is refused for whole-word masking instead of silently
masking characters."""

import json
import os
import sys

import numpy as np
import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.config import MaskingConfig
from uer.data.collator import PretrainCollator
from uer.data.dataset import IndexedDataset
from uer.data.tokenizers import build_tokenizer
from uer.data import word_segmentation
from uer.data.word_segmentation import CONTINUATION_FLAG, SegmentingTokenizer, segmenting, split_flags
from uer.errors import ConfigError

jieba = pytest.importorskip("jieba")


@pytest.fixture(scope="module")
def zh(data_dir):
    return os.path.join(data_dir, "vocab", "google_zh_vocab.txt"), \
        os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt")


@pytest.fixture(scope="module")
def tokenizer(zh):
    return build_tokenizer("bert", zh[0])


def test_continuation_flags_follow_jieba_words(tokenizer):
    seg = SegmentingTokenizer(tokenizer)
    text = "我爱北京天安门"
    words = jieba.lcut(text)
    ids = seg.encode(text)
    plain, cont = split_flags(ids)
    assert list(plain) == [int(i) for i in tokenizer.encode(text)]          # the same ids, flags aside
    expected = [flag for word in words for flag in [0] + [1] * (len(word) - 1)]
    assert list(cont) == expected and sum(expected) > 0
    assert all(i < CONTINUATION_FLAG for i in plain)


def test_a_user_dictionary_changes_the_words(tokenizer, tmp_path):
    text = "我爱北京天安门"
    user_dict = tmp_path / "dict.txt"
    user_dict.write_text("我爱北 100000\n", encoding="utf-8")
    default = split_flags(SegmentingTokenizer(tokenizer).encode(text))[1]
    custom = split_flags(SegmentingTokenizer(tokenizer, str(user_dict)).encode(text))[1]
    assert list(custom[:3]) == [0, 1, 1] and list(custom) != list(default)


def test_the_segmenter_is_chosen_by_tokenizer_and_flags(tokenizer, tmp_path):
    assert isinstance(segmenting(tokenizer, True, None, None)[0], SegmentingTokenizer)
    assert segmenting(tokenizer, True, "none", None) == (tokenizer, None)
    assert segmenting(tokenizer, False, None, None) == (tokenizer, None)
    with pytest.raises(ConfigError, match="--user_dict_path .* does not exist"):
        segmenting(tokenizer, True, None, str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="--user_dict_path is for --whole_word_masking"):
        segmenting(tokenizer, False, None, str(tmp_path / "missing.txt"))


def test_a_missing_jieba_is_one_clear_error(tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)               # import jieba -> ImportError
    monkeypatch.setattr(word_segmentation, "_JIEBA", {})
    with pytest.raises(ConfigError, match="pip install jieba"):
        segmenting(tokenizer, True, None, None)


@pytest.fixture(scope="module")
def corpus(zh, tmp_path_factory):
    path = tmp_path_factory.mktemp("zh") / "corpus.txt"
    with open(zh[1], encoding="utf-8") as f:
        lines = [next(f) for _ in range(400)]
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def wwm_dataset(zh, corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("wwm") / "dataset")
    preprocess_main(["--corpus_path", corpus, "--vocab_path", zh[0], "--dataset_path", path, "--seq_length", "64",
                     "--data_processor", "bert", "--whole_word_masking"])
    return path


def test_preprocess_stores_the_word_boundaries(wwm_dataset, corpus, tokenizer):
    dataset = IndexedDataset(wwm_dataset)
    meta = json.load(open(os.path.join(wwm_dataset, "meta.json")))
    assert meta["streams"] == ["src", "word_cont"] and meta["word_boundaries"]["segmenter"] == "jieba"
    words = {w for line in open(corpus, encoding="utf-8") for w in jieba.lcut(line.strip())}
    vocab = tokenizer.vocab
    inside, known, continued, total = 0, 0, 0, 0
    for i in range(len(dataset)):
        item = dataset[i]
        src, cont = item["src"], item["word_cont"]
        assert len(src) == len(cont) and not cont[0] and not any(cont[src == vocab.sep_id])
        continued, total = continued + int(cont.sum()), total + len(src)
        groups, current = [], []
        for token, flag in zip(src, cont):
            if not flag and current:
                groups.append(current)
                current = []
            current.append(token)
        for group in groups[1:-1]:           # the first/last may be cut by truncation
            if len(group) > 1:
                inside += 1
                known += "".join(vocab.tokens[t].lstrip("#") for t in group) in words
    assert continued / total > 0.2                                   # Chinese words are mostly 2+ characters
    assert inside > 500 and known / inside > 0.97, (known, inside)


def test_whole_words_are_masked_together_at_the_masking_rate(wwm_dataset, tokenizer):
    dataset = IndexedDataset(wwm_dataset)
    masking = MaskingConfig(whole_word_masking=True)
    collator = PretrainCollator(tokenizer.vocab, ["mlm"], masking, seed=3, fields=dataset.fields, seq_length=64)
    selected, maskable_total, words_split = 0, 0, 0
    for start in range(0, len(dataset), 32):
        indices = list(range(start, min(start + 32, len(dataset))))
        batch = collator([dataset[i] for i in indices], indices, epoch=0)
        positions, labels = batch["mlm_positions"].numpy(), batch["mlm_labels"].numpy()
        for row, i in enumerate(indices):
            item = dataset[i]
            chosen = set(positions[row][labels[row] != -100].tolist())
            word_of = np.cumsum(1 - item["word_cont"])               # word number per token
            maskable = ~collator.special[item["src"]]
            for p in chosen:
                members = np.nonzero((word_of == word_of[p]) & maskable)[0]
                words_split += not set(members.tolist()) <= chosen
            selected += len(chosen)
            maskable_total += int(maskable.sum())
    assert words_split == 0
    assert 0.12 < selected / maskable_total < 0.16, selected / maskable_total


def test_whole_word_masking_of_a_chinese_dataset_without_boundaries_is_refused(zh, corpus, tmp_path, capsys):
    dataset = str(tmp_path / "plain")
    preprocess_main(["--corpus_path", corpus, "--vocab_path", zh[0], "--dataset_path", dataset, "--seq_length", "64",
                     "--data_processor", "bert"])
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16,
                                  "feedforward_size": 32, "heads_num": 2, "layers_num": 1, "max_seq_length": 64,
                                  "target": ["mlm", "sp"]}))
    with pytest.raises(SystemExit) as info:
        pretrain_main(["--dataset_path", dataset, "--vocab_path", zh[0], "--config_path", str(config),
                       "--output_model_path", str(tmp_path / "m.bin"), "--total_steps", "1", "--batch_size", "4",
                       "--whole_word_masking"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "preprocess.py --whole_word_masking" in err and "jieba" in err, err
