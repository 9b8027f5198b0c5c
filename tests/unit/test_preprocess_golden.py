"""preprocess.py's output, byte for byte, on slices of real corpora: the sha256 of the token and index
shards recorded before the tokenizer / writer speed-ups (benchmarks/preprocess_throughput.py) and
checked after them.  A change in tokenization, instance building, RNG use or the file format shows here
first; if it is meant, say so in the commit and record the new digests.  Also: preprocess.py never imports
torch (a second of every run's start-up, and memory in every forked worker)."""

import hashlib
import itertools
import os
import subprocess
import sys

import pytest

from uer.data.dataset import IndexedDataset
from uer.data.preprocess import build_dataset
from uer.data.tokenizers import build_tokenizer

# (corpus under UER_DATA_DIR, lines taken, vocabulary, processor, options) -> (instances, sha256 of the shards)
CASES = {
    "bert-zh": (("zh/corpora/CLUECorpusSmall_bert_sampled.txt", 3000, "google_zh_vocab.txt", "bert",
                 {"processes_num": 2, "docs_buffer_size": 100}),
                (1184, "8746dd66a8c75a0beaa192649dac8dde45f8b4ed77fead4c15a58427829e5bba")),
    "mlm-en": (("en/wikitext-2/valid.txt", 1500, "google_uncased_en_vocab.txt", "mlm",
                {"processes_num": 1, "docs_buffer_size": 50}),
               (1377, "8fd2b040de1579e3e1a8c9a03e1e3851aadf0c577943aaa28e0a0ee0fe345407")),
}


def shards_digest(path: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        if name.endswith(".bin"):
            with open(os.path.join(path, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_bytes_unchanged(tmp_path, data_dir, case):
    (corpus, lines, vocab, processor, options), (instances, digest) = CASES[case]
    with open(os.path.join(data_dir, corpus), encoding="utf-8") as f:
        (tmp_path / "corpus.txt").write_text("".join(itertools.islice(f, lines)), encoding="utf-8")
    tokenizer = build_tokenizer("bert", os.path.join(data_dir, "vocab", vocab))
    out = str(tmp_path / "dataset")
    build_dataset(str(tmp_path / "corpus.txt"), out, tokenizer, processor, 128, seed=7, show_progress=False, **options)
    assert (len(IndexedDataset(out)), shards_digest(out)) == (instances, digest)


def test_preprocess_never_imports_torch(tiny_corpus, tmp_path):
    script = ("import sys\nfrom uer.cli.preprocess import main\n"
              f"main(['--corpus_path', {str(tiny_corpus / 'corpus.txt')!r}, '--vocab_path', "
              f"{str(tiny_corpus / 'vocab.txt')!r}, '--dataset_path', {str(tmp_path / 'ds')!r}, '--processes_num', '2'])\n"
              "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
