"""The Task contract over the TASKS registry: every registered task family reads its sample data,
trains a few steps, evaluates, predicts, saves and reloads through the one CLI/runner (local
engine); a bad row is one error naming file and line; a new task family is one registration."""

import importlib
import json
import random

import numpy as np
import pytest

from uer.cli.tasks import finetune, infer
from uer.errors import DataError
from uer.registry import TASKS
from uer.tasks.base import TaskData
from uer.tasks.classification import TextClassificationTask
from uer.tasks.metrics import classification_metrics
from task_samples.common import CHARS, WORDS, sentence, write

TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 32, "hidden_size": 32, "feedforward_size": 64,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 64, "dropout": 0.0, "target": ["mlm"]}


def samples(task, tmp, rng):
    """(train, dev, infer) files of ``task`` and the extra flags it needs; label = f(text) so learnable."""
    def text_rows(label_of, n):
        rows = []
        for _ in range(n):
            text = sentence(rng)
            rows.append((label_of(text), text))
        return rows
    first = lambda t: int(t.split()[0][1:]) % 2           # noqa: E731
    if task in ("classification", "regression", "multi_label"):
        label = {"classification": lambda t: str(first(t)),
                 "regression": lambda t: f"{int(t.split()[0][1:]) / 10:.2f}",
                 "multi_label": lambda t: ",".join(str(i) for i in range(3) if f"w{i}" in t.split())}[task]
        files = [write(tmp / f"{s}.tsv", "label\ttext_a", [f"{label(t)}\t{t}" for _, t in text_rows(first, n)])
                 for s, n in (("train", 64), ("dev", 16))]
        files.append(write(tmp / "infer.tsv", "text_a", [sentence(rng) for _ in range(5)]))
        bad = write(tmp / "bad.tsv", "label\ttext_a", ["0\tw1 w2", "zz\tw3", "1\tw4\textra"])
        return files, [], bad
    if task == "dbqa":
        def rows(n):
            out = []
            for q in range(n):
                question = sentence(rng, 3)
                for c in range(3):
                    answer = sentence(rng, 4)
                    out.append(f"{int(c == 0)}\tq{q}\t{question}\t{answer}")
            return out
        files = [write(tmp / f"{s}.tsv", "label\tqid\ttext_a\ttext_b", rows(n)) for s, n in (("train", 16), ("dev", 5))]
        files.append(write(tmp / "infer.tsv", "qid\ttext_a\ttext_b", ["q1\tw1 w2\tw3 w4", "q1\tw1 w2\tw5"]))
        bad = write(tmp / "bad.tsv", "label\tqid\ttext_a\ttext_b", ["1\tq0\tw1\tw2", "x\tq0\tw1\tw3"])
        return files, [], bad
    if task == "ner":
        def row():
            tokens = sentence(rng).split()
            return " ".join(tokens) + "\t" + " ".join("B-X" if tok in ("w1", "w2") else "O" for tok in tokens)
        files = [write(tmp / f"{s}.tsv", "text_a\tlabel", [row() for _ in range(n)]) for s, n in (("train", 64), ("dev", 16))]
        files.append(write(tmp / "infer.tsv", "text_a", [sentence(rng) for _ in range(5)]))
        bad = write(tmp / "bad.tsv", "text_a\tlabel", ["w1 w2\tB-X O", "w1 w2 w3\tO O"])
        return files, [], bad
    if task == "mrc":
        def squad(n, answers=True):
            qas = []
            for i in range(n):
                context = "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(20))
                start = rng.randrange(0, 15)
                qa = {"id": f"q{i}", "question": "甲乙", "answers": [{"text": context[start:start + 3],
                                                                    "answer_start": start}] if answers else []}
                qas.append({"context": context, "qas": [qa]})
            return {"data": [{"paragraphs": qas}]}
        files = []
        for s, n, a in (("train", 24, True), ("dev", 8, True), ("infer", 4, False)):
            (tmp / f"{s}.json").write_text(json.dumps(squad(n, a), ensure_ascii=False), encoding="utf-8")
            files.append(str(tmp / f"{s}.json"))
        (tmp / "bad.json").write_text('{"data": [', encoding="utf-8")
        return files, [], str(tmp / "bad.json")
    try:
        module = importlib.import_module(f"task_samples.{task}")
    except ModuleNotFoundError as e:
        if e.name != f"task_samples.{task}":
            raise
        return None
    return module.samples(tmp, rng)


def vocab_file(tmp):
    path = tmp / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + CHARS) + "\n", encoding="utf-8")
    return str(path)


def common(tmp):
    (tmp / "tiny.json").write_text(json.dumps(TINY), encoding="utf-8")
    return ["--vocab_path", vocab_file(tmp), "--config_path", str(tmp / "tiny.json")]


@pytest.mark.parametrize("task,flags", [(name, []) for name in sorted(TASKS.names())] + [("ner", ["--crf_target"])])
def test_every_registered_task_trains_evaluates_predicts_and_reloads(task, flags, tmp_path):
    rng = random.Random(5)
    found = samples(task, tmp_path, rng)
    if found is None:
        pytest.fail(f"task '{task}' is registered but has no sample data: add tests/integration/task_samples/"
                    f"{task}.py (see that folder's __init__.py)")
    (train, dev, infer_file), extra, bad = found
    extra = extra + flags
    out = str(tmp_path / "model.bin")
    results = finetune(task, common(tmp_path) + extra + [
        "--train_path", train, "--dev_path", dev, "--test_path", dev, "--output_model_path", out,
        "--epochs_num", "2", "--batch_size", "8", "--learning_rate", "1e-3", "--seq_length", "32",
        "--report_steps", "4"])
    primary = TASKS.get(task).primary_metric
    assert primary in results["dev"] and primary in results["test"]
    assert results["dev"][primary] == pytest.approx(results["test"][primary])   # same file, best model reloaded
    saved = json.load(open(out + ".task.json"))
    assert saved["task"] == task and saved["head"] == ("crf_tagger" if flags else TASKS.get(task).head)
    records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
    assert len(records) >= 2 and all(np.isfinite(r["loss"]) for r in records)
    prediction = str(tmp_path / "pred.out")
    written = infer(task, ["--vocab_path", str(tmp_path / "vocab.txt"), "--load_model_path", out,
                           "--test_path", infer_file, "--prediction_path", prediction, "--batch_size", "3"])
    assert written is not None and open(prediction, encoding="utf-8").read().strip()
    with pytest.raises(DataError, match=r"bad\.(tsv|json)( line \d+|.*line \d+)"):
        finetune(task, common(tmp_path) + extra + ["--train_path", bad, "--dev_path", dev,
                                                   "--output_model_path", str(tmp_path / "m2.bin")])


def test_a_new_task_family_is_one_registration(tmp_path):
    """A task predicting whether text_a holds more than three words: one class, one decorator."""
    @TASKS.register("toy_length")
    class LengthTask(TextClassificationTask):
        name, head, primary_metric = "toy_length", "classifier", "accuracy"

        def parse_label(self, value, path, line):
            return int(value)

        def prepare(self, train: TaskData, config) -> None:
            config.labels_num = 2

        def evaluate(self, data, outputs):
            return classification_metrics([e["label"] for e in data.examples], outputs.argmax(-1).tolist())

        def prediction_lines(self, data, outputs):
            return ["label"] + [str(int(i)) for i in outputs.argmax(-1)]

    try:
        rng = random.Random(1)
        rows = [sentence(rng, rng.randrange(1, 8)) for _ in range(80)]
        lines = [f"{int(len(t.split()) > 3)}\t{t}" for t in rows]
        train = write(tmp_path / "train.tsv", "label\ttext_a", lines[:64])
        dev = write(tmp_path / "dev.tsv", "label\ttext_a", lines[64:])
        results = finetune("toy_length", common(tmp_path) + [
            "--train_path", train, "--dev_path", dev, "--output_model_path", str(tmp_path / "toy.bin"),
            "--epochs_num", "1", "--batch_size", "8", "--seq_length", "16"])
        assert 0.0 <= results["dev"]["accuracy"] <= 1.0 and results["dev"]["examples"] == 16
    finally:
        TASKS._entries.pop("toy_length", None)


def test_distillation_from_teacher_logits_in_the_train_file(tmp_path):
    """--soft_targets with --soft_alpha 1: the student is trained only to match the teacher's logits
    (MSE), so that loss falls from the teacher's scale (16) towards 0."""
    rng = random.Random(2)
    rows = [sentence(rng) for _ in range(96)]
    gold = [int(t.split()[0][1:]) % 2 for t in rows]
    teacher = [f"{4.0 * (2 * g - 1):.1f} {-4.0 * (2 * g - 1):.1f}" for g in gold]   # favours 1 - gold
    train = write(tmp_path / "train.tsv", "label\ttext_a\tlogits",
                  [f"{g}\t{t}\t{lg}" for g, t, lg in zip(gold[:80], rows[:80], teacher[:80])])
    dev = write(tmp_path / "dev.tsv", "label\ttext_a", [f"{1 - g}\t{t}" for g, t in zip(gold[:80], rows[:80])])
    results = finetune("classification", common(tmp_path) + [
        "--train_path", train, "--dev_path", dev, "--output_model_path", str(tmp_path / "student.bin"),
        "--epochs_num", "15", "--batch_size", "16", "--learning_rate", "3e-3", "--seq_length", "16",
        "--soft_targets", "--soft_alpha", "1.0", "--warmup", "0.0", "--report_steps", "5"])
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0
    records = [json.loads(line) for line in open(str(tmp_path / "student.bin") + ".metrics.jsonl")]
    assert records[0]["distill_loss"] > 8.0 and records[-1]["distill_loss"] < 0.5 * records[0]["distill_loss"]
    bad = write(tmp_path / "bad.tsv", "label\ttext_a\tlogits", ["0\tw1 w2\t1.0 x"])
    with pytest.raises(DataError, match=r"bad\.tsv line 2"):
        finetune("classification", common(tmp_path) + ["--train_path", bad, "--dev_path", dev, "--soft_targets",
                                                       "--output_model_path", str(tmp_path / "s2.bin")])


def test_lora_fine_tuning_trains_adapters_and_head_only_and_saves_a_merged_model(tmp_path):
    import torch
    from uer.config import config_from_dict, save_config
    from uer.models import build_model
    from uer.models.weights import read_weights, save_state
    rng = random.Random(4)
    vocab = vocab_file(tmp_path)
    config = config_from_dict(dict(TINY, vocab_size=len(open(vocab).read().split())))
    torch.manual_seed(0)
    base = str(tmp_path / "base.bin")
    save_state({k: v for k, v in build_model(config).state_dict().items()}, base)
    save_config(config, base + ".config.json")
    rows = [sentence(rng) for _ in range(48)]
    lines = [f"{int(t.split()[0][1:]) % 2}\t{t}" for t in rows]
    train = write(tmp_path / "train.tsv", "label\ttext_a", lines[:32])
    dev = write(tmp_path / "dev.tsv", "label\ttext_a", lines[32:])
    out = str(tmp_path / "lora_cls.bin")
    results = finetune("classification", ["--vocab_path", vocab, "--pretrained_model_path", base,
                                          "--train_path", train, "--dev_path", dev, "--test_path", dev,
                                          "--output_model_path", out, "--epochs_num", "2", "--batch_size", "8",
                                          "--learning_rate", "1e-2", "--seq_length", "16", "--use_lora",
                                          "--lora_r", "4"])
    assert results["test"]["accuracy"] == pytest.approx(results["dev"]["accuracy"])   # merged model reloaded
    pretrained, merged, adapter = read_weights(base), read_weights(out), read_weights(out + ".lora.bin")
    assert not any("lora_" in k for k in merged)
    assert adapter and all("lora_" in k or k.startswith("head.") for k in adapter)
    assert torch.equal(merged["embedding.word.embedding.weight"], pretrained["embedding.word.embedding.weight"])
    changed = [k for k in merged if k in pretrained and not torch.equal(merged[k], pretrained[k])]
    assert changed and all(k.endswith(".weight") for k in changed)     # only the merged adapted matrices
    prediction = str(tmp_path / "pred.tsv")
    infer("classification", ["--vocab_path", vocab, "--load_model_path", out, "--test_path", dev,
                             "--prediction_path", prediction])
    assert len(open(prediction).read().splitlines()) == 17
