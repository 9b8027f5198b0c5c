"""Fine-tuning machinery speed without changing results: prediction batches examples by length
(uer.tasks.runner.predict with Task.prediction_lengths), and the classification collator hands the
model its host-side lengths (no device read per forward)."""

import contextlib
import os
import sys

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import SpaceTokenizer
from uer.data.vocab import Vocab
from uer.layers.host_lengths import HostLengths
from uer.tasks.base import TaskData
from uer.tasks.classification import ClassificationCollator, ClassificationTask
from uer.tasks.heads import build_task_model
from uer.tasks.runner import predict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {"vocab_size": 64, "emb_size": 32, "hidden_size": 32, "feedforward_size": 64, "heads_num": 2,
         "layers_num": 2, "max_seq_length": 64, "dropout": 0.1, "embedding": ["word", "pos", "seg"],
         "target": ["mlm", "sp"], "labels_num": 3}


class Engine:
    """What predict() needs of an engine, in one process."""
    world_size, rank = 1, 0

    def __init__(self, model):
        self.model = model

    def to_device(self, batch):
        return batch

    def forward(self, batch):
        return self.model(batch)


def examples(n=23, seed=0):
    """Rows of very different lengths (3..40 tokens), half sentence pairs, in a random order."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(3, 41))
        src = np.concatenate([[2], rng.integers(5, 64, length - 2), [3]]).astype(np.int64)
        out.append({"src": src, "seg_a_len": length if rng.random() < 0.5 else max(2, length // 2),
                    "label": int(rng.integers(0, 3))})
    return out


def model(unpad=False):
    torch.manual_seed(0)
    return build_task_model(config_from_dict({**SMALL, "unpad": unpad}, "test"), "classifier")


class CountingCollator(ClassificationCollator):
    """Counts the positions (real + padding) of every batch it builds, and the indices it was given."""

    def __init__(self):
        super().__init__(pad_id=0)
        self.positions, self.indices = 0, []

    def __call__(self, items, indices=None, epoch=0):
        out = super().__call__(items, indices, epoch)
        self.positions += out["src"].numel()
        self.indices.extend(indices)
        return out


@pytest.mark.parametrize("unpad", [False, True])
def test_length_batched_prediction_gives_the_same_outputs_in_the_examples_order(unpad):
    rows, m = examples(), model(unpad)
    plain, by_length = CountingCollator(), CountingCollator()
    expected = predict(Engine(m), rows, plain, batch_size=4)
    got = predict(Engine(m), rows, by_length, batch_size=4, lengths=[len(r["src"]) for r in rows])
    assert got.shape == expected.shape == (len(rows), 3)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert by_length.positions < 0.8 * plain.positions          # the point: far less padding
    assert sorted(by_length.indices) == list(range(len(rows)))   # each example once, under its own index
    assert by_length.indices[0] == int(np.argmax([len(r["src"]) for r in rows]))   # longest first


def test_equal_lengths_keep_the_file_order():
    rows = [{"src": np.array([2, 5 + i, 3]), "seg_a_len": 3, "label": 0} for i in range(6)]
    collator = CountingCollator()
    predict(Engine(model()), rows, collator, batch_size=4, lengths=[3] * 6)
    assert collator.indices == list(range(6))


def test_classification_tasks_declare_their_lengths():
    rows = examples(5)
    task = ClassificationTask(SpaceTokenizer(Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]"]), do_lower_case=False), 64)
    lengths = task.prediction_lengths(TaskData(rows, "x.tsv", "dev"))
    assert lengths == [len(r["src"]) for r in rows]


@contextlib.contextmanager
def device_reads(monkeypatch):
    """Records (file, line) of every tensor-to-host conversion while active."""
    seen = []
    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"):
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, **kwargs):
                frame = sys._getframe(1)
                seen.append((os.path.relpath(frame.f_code.co_filename, ROOT), frame.f_lineno))
                return _original(tensor, *args, **kwargs)
            patch.setattr(torch.Tensor, name, counted)
        yield seen


@pytest.mark.parametrize("unpad", [False, True])
def test_the_classifier_step_reads_nothing_back_with_the_collators_lengths(monkeypatch, unpad):
    """The collator's seg_lengths describe its seg; with them a fine-tuning forward + backward makes no
    device-to-host read, and the loss equals the one computed without them (the read-back fallback)."""
    batch = ClassificationCollator(pad_id=0)(examples(8))
    assert batch["seg_lengths"] == HostLengths.of(batch["seg"]) and batch["seg_lengths"].has_padding
    m = model(unpad)
    with device_reads(monkeypatch) as reads:
        torch.manual_seed(1)
        with_lengths = m(batch)["loss"]
        with_lengths.backward()
    assert reads == []
    bare = {k: v for k, v in batch.items() if k != "seg_lengths"}
    with device_reads(monkeypatch) as reads:
        torch.manual_seed(1)
        without = m(bare)["loss"]
    assert reads                   # the fallback does read seg back: the counter can see a read
    assert torch.equal(with_lengths.detach(), without.detach())
