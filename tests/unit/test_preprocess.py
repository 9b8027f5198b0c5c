"""The preprocessing pipeline end to end: dataset contents, determinism across worker counts,
dup_factor, streaming with bounded work in flight, clean failures, CLI, and a real-corpus run."""

import itertools
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from uer.cli.preprocess import main
from uer.data import preprocess as pp
from uer.data.dataset import IndexedDataset, read_meta
from uer.data.preprocess import build_dataset
from uer.data.processors import build_processor
from uer.data.tokenizers import build_tokenizer
from uer.errors import ConfigError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
N_WORDS = 3000


def write_vocab(path, specials=SPECIALS) -> str:
    path.write_text("\n".join(list(specials) + [f"w{i}" for i in range(N_WORDS)]) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return write_vocab(tmp_path_factory.mktemp("vocab") / "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
    return build_tokenizer(name="bert", vocab_path=vocab_path)


def words(rng, k):
    return " ".join(f"w{i}" for i in rng.integers(0, N_WORDS, k))


def sentence_corpus(path, n_docs=120, seed=0) -> str:
    """One sentence per line, blank line between documents (bert/albert)."""
    rng = np.random.default_rng(seed)
    docs = ["\n".join(words(rng, int(rng.integers(2, 9))) for _ in range(int(rng.integers(1, 9))))
            for _ in range(n_docs)]
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


def line_corpus(path, n_docs=120, seed=0, max_len=60) -> str:
    """One document per line (mlm/lm)."""
    rng = np.random.default_rng(seed)
    path.write_text("".join(words(rng, int(rng.integers(1, max_len))) + "\n" for _ in range(n_docs)),
                    encoding="utf-8")
    return str(path)


def run(tmp_path, tokenizer, corpus, processor, name="ds", **kw) -> str:
    kw.setdefault("seq_length", 32)
    kw.setdefault("show_progress", False)
    path = str(tmp_path / name)
    build_dataset(corpus, path, tokenizer, processor, **kw)
    return path


def instances(path):
    ds = IndexedDataset(path)
    return [ds[i] for i in range(len(ds))]


def dataset_bytes(path) -> dict:
    return {name: pathlib.Path(path, name).read_bytes() for name in sorted(os.listdir(path))}


def leftovers(directory) -> list:
    return sorted(os.listdir(directory))


# -- contents and meta --------------------------------------------------------------------------
def test_bert_dataset_meta_and_instances(tmp_path, tokenizer):
    corpus = sentence_corpus(tmp_path / "c.txt")
    path = run(tmp_path, tokenizer, corpus, "bert", docs_buffer_size=25, dup_factor=2, seed=3,
               masking={"whole_word_masking": True, "span_geo_prob": 0.3})
    meta = read_meta(path)
    assert meta["processor"] == "bert" and meta["seq_length"] == 32 and meta["seed"] == 3
    assert meta["tokenizer"] == tokenizer.describe() and meta["dup_factor"] == 2
    assert meta["full_sentences"] is False and meta["short_seq_prob"] == 0.1
    assert meta["corpus_path"] == os.path.abspath(corpus) and meta["documents"] == 120
    assert meta["masking"] == {"dynamic_masking": True, "whole_word_masking": True, "span_masking": False,
                               "span_geo_prob": 0.3, "span_max_length": 10}
    assert meta["streams"] == ["src"] and meta["fields"] == ["seg_a_len", "label"]
    assert meta["token_dtype"] == "uint16"
    for item in instances(path):
        src, a = list(item["src"]), item["seg_a_len"]
        assert len(src) <= 32 and src[0] == CLS and src[a - 1] == SEP and src[-1] == SEP
        assert src.count(SEP) == 2 and item["label"] in (0, 1)


def test_pipeline_matches_the_processor_block_by_block(tmp_path, tokenizer):
    """The pipeline adds nothing of its own: block k, round r == processor.build(rng(seed, k, r))."""
    corpus = sentence_corpus(tmp_path / "c.txt", n_docs=30)
    path = run(tmp_path, tokenizer, corpus, "albert", docs_buffer_size=20, dup_factor=2, seed=5)
    proc = build_processor("albert", tokenizer.vocab, 32)
    docs = list(pp._read_documents(pp._read_lines(corpus, lambda n: None), "documents"))
    expected = []
    for k, block in enumerate((docs[:20], docs[20:])):
        tokenized = proc.tokenize(block, tokenizer)
        for r in range(2):
            expected += proc.build(tokenized, np.random.default_rng([5, k, r]))
    got = instances(path)
    assert len(got) == len(expected)
    assert all(list(g["src"]) == list(src) and (g["seg_a_len"], g["label"]) == f
               for g, (src, f) in zip(got, expected))


def test_full_sentences_packing_continues_across_blocks(tmp_path, tokenizer):
    corpus = line_corpus(tmp_path / "c.txt")
    one_block = instances(run(tmp_path, tokenizer, corpus, "mlm", name="a", full_sentences=True))
    many_blocks = instances(run(tmp_path, tokenizer, corpus, "mlm", name="b", full_sentences=True,
                                docs_buffer_size=7))
    assert [list(i["src"]) for i in one_block] == [list(i["src"]) for i in many_blocks]
    assert all(len(i["src"]) == 32 for i in one_block[:-1])
    assert read_meta(str(tmp_path / "a"))["full_sentences"] is True


def test_lm_dataset_preserves_every_token(tmp_path, tokenizer):
    corpus = line_corpus(tmp_path / "c.txt")
    got = instances(run(tmp_path, tokenizer, corpus, "lm", docs_buffer_size=9, processes_num=2))
    assert all(len(i["src"]) == 33 for i in got[:-1]) and 2 <= len(got[-1]["src"]) <= 33
    lines = pathlib.Path(corpus).read_text(encoding="utf-8").splitlines()
    stream = [t for line in lines for t in [CLS, *tokenizer.encode(line), SEP]]
    flat = [int(t) for i in got for t in i["src"]]
    assert flat == stream[:len(flat)] and len(stream) - len(flat) <= 1


def test_cls_dataset_skips_blank_lines_and_reports_real_line_numbers(tmp_path, tokenizer):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("1\tw1 w2\n\n0\tw3\tw4 w5\r\n\n2\tw6\n", encoding="utf-8")
    got = instances(run(tmp_path, tokenizer, str(corpus), "cls"))
    assert [(list(i["src"]), i["seg_a_len"], i["label"]) for i in got] == [
        ([CLS, 6, 7, SEP], 4, 1), ([CLS, 8, SEP, 9, 10, SEP], 3, 0), ([CLS, 11, SEP], 3, 2)]
    corpus.write_text("1\tw1\n\n\nlabel\tw2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.tsv, line 4: label 'label' is not an integer"):
        run(tmp_path, tokenizer, str(corpus), "cls", name="bad")


# -- determinism and dup_factor -------------------------------------------------------------------
@pytest.mark.parametrize("processor, corpus_fn, kw", [
    ("bert", sentence_corpus, {"dup_factor": 2}),
    ("mlm", line_corpus, {"full_sentences": True, "dup_factor": 2}),
])
def test_same_seed_same_bytes_whatever_processes_num(tmp_path, tokenizer, processor, corpus_fn, kw):
    corpus = corpus_fn(tmp_path / "c.txt", n_docs=150)
    one = run(tmp_path, tokenizer, corpus, processor, name="p1", processes_num=1, docs_buffer_size=10, **kw)
    two = run(tmp_path, tokenizer, corpus, processor, name="p2", processes_num=2, docs_buffer_size=10, **kw)
    assert dataset_bytes(one) == dataset_bytes(two)
    if processor == "bert":
        other = run(tmp_path, tokenizer, corpus, processor, name="s", seed=8, docs_buffer_size=10, **kw)
        assert dataset_bytes(other) != dataset_bytes(one)


def test_dup_factor_multiplies_instances(tmp_path, tokenizer):
    lines = line_corpus(tmp_path / "l.txt")
    for processor, extra in (("mlm", {}), ("mlm", {"full_sentences": True}), ("lm", {})):
        once = read_meta(run(tmp_path, tokenizer, lines, processor, name="m1", **extra))["instances"]
        path = run(tmp_path, tokenizer, lines, processor, name="m3", dup_factor=3, **extra)
        thrice = read_meta(path)
        packed = processor == "lm" or extra
        # Packed rounds start at shifted offsets, so a round may lose its last partial chunk.
        assert (3 * once - 2 <= thrice["instances"] <= 3 * once) if packed else thrice["instances"] == 3 * once
        assert thrice["dup_factor"] == 3
        if packed:   # the copies are cut at other places, not byte-identical repeats
            unique = {tuple(i["src"]) for i in instances(path)}
            assert len(unique) > 2 * once
    sentences = sentence_corpus(tmp_path / "s.txt", n_docs=60)
    once = instances(run(tmp_path, tokenizer, sentences, "bert", name="b1"))
    thrice = instances(run(tmp_path, tokenizer, sentences, "bert", name="b3", dup_factor=3))
    assert 2.5 * len(once) < len(thrice) < 3.5 * len(once)
    # Round 0 of the duplicated run is the single run; later rounds pair differently.
    assert [list(i["src"]) for i in thrice[:len(once)]] == [list(i["src"]) for i in once]
    assert [list(i["src"]) for i in thrice[len(once):2 * len(once)]] != [list(i["src"]) for i in once]


# -- streaming ------------------------------------------------------------------------------------
@pytest.mark.parametrize("processes_num", [1, 2])
def test_blocks_are_pulled_lazily_with_bounded_work_in_flight(tokenizer, processes_num):
    proc = build_processor("mlm", tokenizer.vocab, 16)
    pulled = itertools.count()

    def endless_blocks():
        for k in itertools.count():
            next(pulled)
            yield k, [(k + 1, ["w1 w2 w3"])]

    results = pp._map_in_order(endless_blocks(), (proc, tokenizer, 7, 1), processes_num)
    first = [next(results) for _ in range(5)]
    results.close()
    assert all(len(instances) == 1 and skipped == {} for instances, skipped in first)
    assert next(pulled) <= 5 + 2 * processes_num


def test_progress_bar_and_final_log_line(tmp_path, tokenizer, capsys, caplog):
    corpus = line_corpus(tmp_path / "c.txt", n_docs=20)
    with caplog.at_level(logging.INFO):
        meta = build_dataset(corpus, str(tmp_path / "ds"), tokenizer, "mlm", 32, show_progress=True)
    err = capsys.readouterr().err
    assert "preprocess" in err and "B/s" in err
    assert f"20 documents, {meta['instances']} instances, {meta['tokens']} tokens" in caplog.text


# -- errors leave nothing behind ------------------------------------------------------------------
def assert_clean_failure(tmp_path, error, match, fn):
    before = leftovers(tmp_path)
    with pytest.raises(error, match=match):
        fn()
    assert leftovers(tmp_path) == before, "a failed run must leave no dataset or temporary directory"


def test_input_errors_are_clear_and_leave_nothing(tmp_path, tokenizer):
    corpus = sentence_corpus(tmp_path / "c.txt", n_docs=10)
    (tmp_path / "blank.txt").write_text("\n  \n\t\n\n", encoding="utf-8")
    (tmp_path / "a_file").write_text("keep me")
    out = str(tmp_path / "ds")
    cases = [
        (DataError, "corpus_path .*missing.txt does not exist",
         dict(corpus_path=str(tmp_path / "missing.txt"))),
        (DataError, "is empty", dict(corpus_path=str(tmp_path / "blank.txt"))),
        (ConfigError, "unknown data processor 'bartx'.*Valid data processors: albert, bart, bert, cls, (.*, )?gsg, "
                      "(.*, )?lm, mlm, mt, prefixlm, t5", dict(processor_name="bartx")),
        (ConfigError, "seq_length 4 is too small", dict(seq_length=4)),
        (DataError, "a_file exists and is a file", dict(dataset_path=str(tmp_path / "a_file"))),
        (ConfigError, "processes_num must be >= 1", dict(processes_num=0)),
        (ConfigError, "unknown masking option", dict(masking={"wwm": True})),
    ]
    for error, match, overrides in cases:
        kw = dict(corpus_path=corpus, dataset_path=out, tokenizer=tokenizer, processor_name="bert",
                  seq_length=32, show_progress=False)
        kw.update(overrides)
        assert_clean_failure(tmp_path, error, match, lambda: build_dataset(**kw))
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_vocab_without_mask_is_refused_for_bert(tmp_path):
    tok = build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path / "v.txt", SPECIALS[:4]))
    corpus = sentence_corpus(tmp_path / "c.txt", n_docs=5)
    assert_clean_failure(tmp_path, DataError, r"lacks \[MASK\] needed for the bert processor",
                         lambda: run(tmp_path, tok, corpus, "bert"))


def test_foreign_directory_is_not_replaced(tmp_path, tokenizer):
    corpus = line_corpus(tmp_path / "c.txt", n_docs=5)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    assert_clean_failure(tmp_path, DataError, "not a uer dataset",
                         lambda: run(tmp_path, tokenizer, corpus, "mlm"))
    shutil.rmtree(tmp_path / "ds")
    run(tmp_path, tokenizer, corpus, "mlm")
    run(tmp_path, tokenizer, corpus, "lm")   # a previous dataset is replaced
    assert read_meta(str(tmp_path / "ds"))["processor"] == "lm"


@pytest.mark.parametrize("processes_num", [1, 2])
def test_worker_errors_propagate_without_hanging(tmp_path, tokenizer, processes_num):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("".join(f"{i % 2}\tw{i}\n" for i in range(57)) + "oops no tab\n", encoding="utf-8")
    assert_clean_failure(tmp_path, DataError, r"c\.tsv, line 58: expected 'label<TAB>text_a'",
                         lambda: run(tmp_path, tokenizer, str(corpus), "cls", processes_num=processes_num,
                                     docs_buffer_size=5))


class _DyingProcessor:
    """Stands in for a worker that is killed (OOM killer, segfault in an extension)."""

    sequential = False

    def tokenize(self, docs, tokenizer):
        os._exit(3)


def test_a_killed_worker_raises_instead_of_hanging(tokenizer):
    from concurrent.futures.process import BrokenProcessPool

    blocks = iter([(0, [(1, ["w1"])]), (1, [(2, ["w2"])])])
    with pytest.raises(BrokenProcessPool):
        list(pp._map_in_order(blocks, (_DyingProcessor(), tokenizer, 7, 1), processes_num=2))


def test_invalid_utf8_names_the_line(tmp_path, tokenizer):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"w1 w2\nw3 \xff w4\n")
    assert_clean_failure(tmp_path, DataError, r"c\.txt line 2 \(byte offset 9\): not UTF-8",
                         lambda: run(tmp_path, tokenizer, str(corpus), "mlm"))


# -- command line ----------------------------------------------------------------------------------
def test_cli_builds_a_dataset(tmp_path, vocab_path):
    corpus = sentence_corpus(tmp_path / "c.txt", n_docs=30)
    meta = main(["--corpus_path", corpus, "--vocab_path", vocab_path, "--dataset_path", str(tmp_path / "ds"),
                 "--data_processor", "albert", "--seq_length", "24", "--dup_factor", "2",
                 "--dynamic_masking", "--span_masking", "--span_max_length", "5", "--tgt_seq_length", "16"])
    on_disk = read_meta(str(tmp_path / "ds"))
    assert meta == on_disk and on_disk["processor"] == "albert" and on_disk["seq_length"] == 24
    assert on_disk["tgt_seq_length"] == 16 and on_disk["masking"]["span_masking"] is True
    assert on_disk["masking"]["span_max_length"] == 5 and on_disk["dup_factor"] == 2


def test_cli_errors_are_one_line_and_exit_2(tmp_path, vocab_path, capsys):
    corpus = sentence_corpus(tmp_path / "c.txt", n_docs=3)
    with pytest.raises(SystemExit) as exit_info:
        main(["--corpus_path", corpus, "--vocab_path", vocab_path, "--data_processor", "bertt",
              "--dataset_path", str(tmp_path / "ds")])
    assert exit_info.value.code == 2
    assert "error: unknown data processor 'bertt'" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_shim_help_documents_dynamic_masking():
    result = subprocess.run([sys.executable, os.path.join(REPO, "preprocess.py"), "--help"],
                            capture_output=True, text=True, cwd="/", timeout=60)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())   # argparse wraps to the terminal width
    assert "--corpus_path" in help_text and "always dynamic" in help_text


# -- real data ------------------------------------------------------------------------------------
def test_real_chinese_bert_corpus(tmp_path):
    data_dir = os.environ.get("UER_DATA_DIR")
    if not data_dir:
        pytest.skip("UER_DATA_DIR is not set (point it at shared/data to run real-corpus tests)")
    source = os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt")
    with open(source, encoding="utf-8") as f:
        lines = list(itertools.islice(f, 2000))
    corpus = tmp_path / "zh.txt"
    corpus.write_text("".join(lines), encoding="utf-8")
    tok = build_tokenizer(name="bert", vocab_path=os.path.join(data_dir, "vocab", "google_zh_vocab.txt"))
    path = run(tmp_path, tok, str(corpus), "bert", seq_length=128, processes_num=2, docs_buffer_size=100)
    meta = read_meta(path)
    expected_docs = sum(1 for k, g in itertools.groupby(lines, key=lambda s: bool(s.strip())) if k)
    assert meta["documents"] == expected_docs and meta["instances"] > expected_docs
    got = instances(path)
    vocab = tok.vocab
    for item in got:
        src, a = list(item["src"]), item["seg_a_len"]
        assert len(src) <= 128 and src[0] == vocab.cls_id and src[a - 1] == vocab.sep_id
        assert src[-1] == vocab.sep_id and src.count(vocab.sep_id) == 2
    assert 0.4 < np.mean([i["label"] for i in got]) < 0.7
    assert np.mean(np.concatenate([i["src"] for i in got]) == vocab.unk_id) < 0.02   # vocab fits the text
