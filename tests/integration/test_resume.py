"""Resume exactness: N straight steps and N/2 + resume + N/2 give identical losses on CPU."""

import json
import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.training.trainer import Trainer


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def dataset(tiny_corpus, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ds") / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", path, "--seq_length", "48", "--data_processor", "bert"])
    return path


def losses(prefix):
    with open(prefix + ".metrics.jsonl") as f:
        return [(r["step"], r["loss"], r["lr"]) for r in map(json.loads, f)]


def pretrain(tiny_corpus, dataset, out, steps, *extra):
    return pretrain_main(["--dataset_path", dataset, "--vocab_path", str(tiny_corpus / "vocab.txt"),
                          "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", out,
                          "--total_steps", str(steps), "--report_steps", "1", "--save_checkpoint_steps", "5",
                          "--batch_size", "8", "--learning_rate", "1e-3", "--seed", "11", *extra])


@pytest.mark.parametrize("extra", [[], ["--accumulation_steps", "2", "--num_workers", "2"]],
                         ids=["plain", "accumulation+workers"])
def test_resume_continues_the_same_loss_curve(tiny_corpus, dataset, tmp_path, extra, monkeypatch):
    straight = str(tmp_path / "straight" / "model.bin")
    pretrain(tiny_corpus, dataset, straight, 20, *extra)

    # An interrupted run: it crashes right after reporting step 12; the last checkpoint is step 10.
    resumed = str(tmp_path / "resumed" / "model.bin")
    original = Trainer._report

    def crash_at_12(self, *args, **kwargs):
        record = original(self, *args, **kwargs)
        if self.step == 12:
            raise Interrupted()
        return record

    monkeypatch.setattr(Trainer, "_report", crash_at_12)
    with pytest.raises(Interrupted):
        pretrain(tiny_corpus, dataset, resumed, 20, *extra)
    monkeypatch.setattr(Trainer, "_report", original)
    assert [s for s, _, _ in losses(resumed)][-1] == 12
    pretrain(tiny_corpus, dataset, resumed, 20, "--resume", *extra)

    a, b = losses(straight), losses(resumed)
    assert [s for s, _, _ in b] == list(range(1, 21))        # metrics past step 10 were replaced
    assert a == b                                            # bit-identical losses and learning rates
    assert a[-1][1] < a[0][1]                                # and the loss fell


def test_resume_refuses_a_different_config(tiny_corpus, dataset, tmp_path):
    out = str(tmp_path / "m.bin")
    pretrain(tiny_corpus, dataset, out, 5)
    with pytest.raises(SystemExit) as e:
        pretrain(tiny_corpus, dataset, out, 10, "--resume", "--dropout", "0.3")
    assert e.value.code == 2


def test_resume_without_checkpoint_is_a_clear_error(tiny_corpus, dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pretrain(tiny_corpus, dataset, str(tmp_path / "none.bin"), 5, "--resume")
    assert "no checkpoint" in capsys.readouterr().err
