"""No litter (issue 10, item 8): the temporary files of a checkpoint, a model or a dataset being
written when its process was killed with SIGKILL are removed, with a warning, by the next run into
the same place; a temporary file whose writer is still running is left alone."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from uer.cli import pretrain
from uer.cli.preprocess import main as preprocess_main
from uer.cli.tasks import finetune_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITE_FILES = """
    import contextlib
    from uer.utils import atomic_path
    with contextlib.ExitStack() as stack:
        for target in {target!r}.split("|"):
            tmp = stack.enter_context(atomic_path(target))
            open(tmp, "wb").write(b"half a file")
            print(tmp, flush=True)
        time.sleep(120)
"""
WRITE_A_DATASET = """
    from uer.data.dataset import DatasetWriter
    writer = DatasetWriter({target!r}, ["src"], [], vocab_size=100)
    writer.add({{"src": [5, 6, 7]}})
    print(writer.tmp_path, flush=True)
    time.sleep(120)
"""


@pytest.fixture
def writer():
    """Start a process that is half-way through writing the targets; returns (process, its temporary paths)."""
    procs = []

    def start(body, *targets):
        code = "import sys, time\nsys.path.insert(0, %r)\n" % ROOT + textwrap.dedent(
            body.format(target="|".join(map(str, targets))))
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        tmps = [proc.stdout.readline().strip() for _ in targets]
        assert all(tmp and os.path.exists(tmp) for tmp in tmps), tmps
        return proc, tmps
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def kill_9(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_checkpoint_write_is_cleared_by_the_next_run(tiny_corpus, tmp_path, writer, caplog):
    out = tmp_path / "run" / "m.bin"
    dataset = str(tmp_path / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", dataset, "--seq_length", "32"])
    killed, (killed_tmp, config_tmp) = writer(WRITE_FILES, f"{out}-2.state.pt", f"{out}.config.json")
    kill_9(killed)
    alive, (alive_tmp,) = writer(WRITE_FILES, f"{out}-4")
    assert os.path.exists(killed_tmp) and os.path.exists(config_tmp)       # what kill -9 leaves
    with caplog.at_level(logging.WARNING, logger="uer"):
        pretrain.main(["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path",
                       str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out), "--total_steps", "2",
                       "--batch_size", "4", "--num_workers", "0"])
    assert not os.path.exists(killed_tmp) and not os.path.exists(config_tmp)
    assert os.path.exists(alive_tmp)                  # its writer is still at work
    assert killed_tmp in caplog.text and "interrupted" in caplog.text
    leftovers = [n for n in os.listdir(out.parent) if ".tmp-" in n]
    assert leftovers == [os.path.basename(alive_tmp)], leftovers


def test_a_killed_finetune_save_is_cleared_by_the_next_run(tiny_corpus, tmp_path, writer):
    out = tmp_path / "clf.bin"
    killed, (tmp,) = writer(WRITE_FILES, f"{out}.task.json")
    kill_9(killed)
    config = tmp_path / "model.json"
    config.write_text(json.dumps({**json.loads((tiny_corpus / "tiny_bert.json").read_text()), "target": ["mlm"]}))
    finetune_main("classification")(["--vocab_path", str(tiny_corpus / "vocab.txt"), "--config_path", str(config),
                                     "--train_path", str(tiny_corpus / "dev.tsv"), "--dev_path",
                                     str(tiny_corpus / "dev.tsv"), "--output_model_path", str(out), "--epochs_num", "1",
                                     "--batch_size", "25", "--seq_length", "16"])
    assert not os.path.exists(tmp) and out.exists()
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_a_killed_preprocess_is_cleared_by_the_next_one(tiny_corpus, tmp_path, writer, caplog):
    dataset = tmp_path / "dataset"
    killed, (tmp_dir,) = writer(WRITE_A_DATASET, dataset)
    kill_9(killed)
    # Killed between the two renames of publishing: the old dataset moved aside.
    swapped = tmp_path / f"dataset.old-{killed.pid}"
    swapped.mkdir()
    (swapped / "meta.json").write_text("{}")
    assert os.path.isdir(tmp_dir)
    with caplog.at_level(logging.WARNING, logger="uer"):
        preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path",
                         str(tiny_corpus / "vocab.txt"), "--dataset_path", str(dataset), "--seq_length", "32"])
    assert sorted(os.listdir(tmp_path)) == ["dataset"]
    assert (dataset / "meta.json").exists()
    assert tmp_dir in caplog.text and str(swapped) in caplog.text
