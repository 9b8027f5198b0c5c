"""What the fault tests share: one tiny pretraining dataset (read-only: tests that damage a dataset
copy it first) built from the session's tiny corpus."""

import pytest

from uer.cli.preprocess import main as preprocess_main


@pytest.fixture(scope="session")
def dataset(tiny_corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("faults") / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", path, "--seq_length", "32"])
    return path
