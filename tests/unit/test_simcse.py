"""SimCSE (task and head "simcse"): the contrastive loss against a hand computation, the two
dropout views, reading the three training formats and their errors, Spearman evaluation, and the
trained model's sentence vectors from scripts/extract_features.py."""

import json
import math

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import SpaceTokenizer
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.tasks.heads import build_task_model
from uer.tasks.simcse import SimcseTask, contrastive_loss, pair_cosines

WORDS = [f"w{i}" for i in range(20)]
VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)
TOKENIZER = SpaceTokenizer(VOCAB, do_lower_case=False)
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 32, "dropout": 0.1, "vocab_size": len(VOCAB)}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_contrastive_loss_matches_a_hand_computation():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    v = torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    # cos(u_i, v_j): row 0 -> [3/5, 0], row 1 -> [4/5, -1]; divided by the temperature 0.5
    s = [[1.2, 0.0], [1.6, -2.0]]
    row0 = -s[0][0] + math.log(math.exp(s[0][0]) + math.exp(s[0][1]))
    row1 = -s[1][1] + math.log(math.exp(s[1][0]) + math.exp(s[1][1]))
    out = contrastive_loss(u, v, temperature=0.5)
    assert out["loss"].item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert out["simcse_acc"].item() == 0.5          # row 1's most similar is v_0, not its positive
    assert contrastive_loss(u, v, 0.05)["loss"].item() > out["loss"].item()   # sharper: the miss costs more


def test_temperature_must_be_positive():
    with pytest.raises(ConfigError, match="--temperature must be > 0"):
        SimcseTask(TOKENIZER, 16, temperature=0.0)


def test_unsupervised_views_differ_by_dropout_only_in_training():
    torch.manual_seed(0)
    task = SimcseTask(TOKENIZER, 16)
    model = build_task_model(config_from_dict(TINY), "simcse", task.head_options())
    src = TOKENIZER.encode("w1 w2 w3")
    example = {"src_a": np.asarray([2] + src + [3]), "src_b": np.asarray([2] + src + [3])}
    batch = task.collator()([example, example])
    train_out = model(batch)
    assert train_out["logits"].shape == (2, 2, 16) and train_out["loss"].requires_grad
    assert not torch.allclose(train_out["logits"][:, 0], train_out["logits"][:, 1])
    with torch.no_grad():
        eval_out = model.eval()(batch)["logits"]
    assert torch.allclose(eval_out[:, 0], eval_out[:, 1])


def test_reading_plain_sentences_unsupervised_and_supervised_tsv(tmp_path):
    task = SimcseTask(TOKENIZER, 16)
    plain = task.read(write(tmp_path / "p.txt", "w1 w2\n\nw3\n"), "train")
    assert [e["line"] for e in plain] == [1, 3] and not plain.extra["paired"]
    assert plain[1]["src_a"].tolist() == plain[1]["src_b"].tolist() == [2, 8, 3]
    unsup = task.read(write(tmp_path / "u.tsv", "text_a\nw1 w2\nw3\n"), "train")
    assert len(unsup) == 2 and unsup[0]["src_a"].tolist() == unsup[0]["src_b"].tolist()
    sup = task.read(write(tmp_path / "s.tsv", "text_a\ttext_b\nw1\tw2 w3\n"), "train")
    assert sup.extra["paired"] and sup[0]["src_b"].tolist() == [2, 7, 8, 3]
    dev = task.read(write(tmp_path / "d.tsv", "label\ttext_a\ttext_b\n3.8\tw1\tw2\n"), "dev")
    assert dev[0]["label"] == 3.8


def test_reading_errors_name_the_file_and_line(tmp_path):
    task = SimcseTask(TOKENIZER, 16)
    with pytest.raises(DataError, match=r"--train_path .*tab\.txt line 2: a tab in a file of plain sentences"):
        task.read(write(tmp_path / "tab.txt", "w1 w2\nw3\tw4\n"), "train")
    with pytest.raises(DataError, match=r"--train_path .*blank\.txt holds no sentences"):
        task.read(write(tmp_path / "blank.txt", "\n\n"), "train")
    with pytest.raises(DataError, match=r"--dev_path .*d\.tsv line 3: label 'high' is not a number"):
        task.read(write(tmp_path / "d.tsv", "label\ttext_a\ttext_b\n1.0\tw1\tw2\nhigh\tw1\tw2\n"), "dev")
    with pytest.raises(DataError, match=r"--dev_path .*nob\.tsv line 1: .*lacks column\(s\) \['text_b'\]"):
        task.read(write(tmp_path / "nob.tsv", "label\ttext_a\n1.0\tw1\n"), "dev")
    with pytest.raises(DataError, match=r"--train_path .*missing\.tsv does not exist"):
        task.read(str(tmp_path / "missing.tsv"), "train")


def test_spearman_of_cosines_against_gold_scores():
    task = SimcseTask(TOKENIZER, 16)
    angles = np.array([0.1, 0.5, 0.9, 1.4])                    # cosines fall as the angle grows
    outputs = np.stack([np.stack([[1.0, 0.0], [math.cos(a), math.sin(a)]]) for a in angles])
    assert pair_cosines(outputs) == pytest.approx(np.cos(angles))
    data = type("D", (), {"examples": [{"label": g} for g in (5.0, 3.0, 2.5, 0.0)]})()
    assert task.evaluate(data, outputs)["spearman"] == pytest.approx(1.0)
    data.examples = [{"label": g} for g in (0.0, 3.0, 2.5, 5.0)]
    # ranks: cosines 4 3 2 1, gold 1 3 2 4; rank differences 3 0 0 -3: 1 - 6 * 18 / (4 * 15) = -0.8
    scores = task.evaluate(data, outputs)
    assert scores["spearman"] == pytest.approx(-0.8) and set(scores) == {"pearson", "spearman", "examples"}
    assert task.prediction_lines(data, outputs)[:2] == ["similarity", f"{math.cos(0.1):.6f}"]


def test_extract_features_gives_the_sentence_vectors_of_a_simcse_model(tmp_path):
    """Fine-tune SimCSE (mean pooling), then scripts/extract_features.py on the saved model gives the
    vectors the SimCSE model scores with: their cosines are the inference script's similarities."""
    from uer.cli.extract_features import main as extract_main
    from uer.cli.tasks import finetune, infer
    rng = np.random.default_rng(0)
    sentence = lambda: " ".join(rng.choice(WORDS, 5))        # noqa: E731
    vocab = write(tmp_path / "vocab.txt", "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY), encoding="utf-8")
    train = write(tmp_path / "train.txt", "\n".join(sentence() for _ in range(16)) + "\n")
    pairs = [(sentence(), sentence()) for _ in range(6)]
    dev = write(tmp_path / "dev.tsv", "label\ttext_a\ttext_b\n" + "".join(f"{i}\t{a}\t{b}\n"
                                                                          for i, (a, b) in enumerate(pairs)))
    out = str(tmp_path / "simcse.bin")
    common = ["--vocab_path", vocab, "--seq_length", "16", "--batch_size", "8"]
    finetune("simcse", common + ["--config_path", str(tmp_path / "tiny.json"), "--train_path", train,
                                 "--dev_path", dev, "--output_model_path", out, "--epochs_num", "1",
                                 "--learning_rate", "1e-3", "--pooling", "mean"])
    infer_in = write(tmp_path / "infer.tsv", "text_a\ttext_b\n" + "".join(f"{a}\t{b}\n" for a, b in pairs))
    similarities = infer("simcse", common + ["--load_model_path", out, "--test_path", infer_in,
                                             "--prediction_path", str(tmp_path / "sim.tsv")])
    assert similarities[0] == "similarity" and len(similarities) == 7
    sentences = write(tmp_path / "sentences.txt", "".join(f"{a}\n{b}\n" for a, b in pairs))
    vectors = extract_main(["--load_model_path", out, "--vocab_path", vocab, "--test_path", sentences,
                            "--prediction_path", str(tmp_path / "features.pt"), "--pooling", "mean",
                            "--seq_length", "16", "--device", "cpu"]).numpy()
    assert vectors.shape == (12, 16)
    cosines = pair_cosines(vectors.reshape(6, 2, 16))
    assert [float(s) for s in similarities[1:]] == pytest.approx(cosines.tolist(), abs=2e-6)
    assert np.ptp(cosines) > 1e-3          # distinct pairs, distinct similarities: not a constant vector
