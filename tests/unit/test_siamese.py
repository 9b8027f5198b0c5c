"""The two-tower sentence-pair classifier (task and head "siamese"): the feature combination
[u; v; |u-v|; u*v], towers that never see the other text, pair reading errors, the collator and
UER-py's prediction file."""

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.data.tokenizers import SpaceTokenizer
from uer.data.vocab import Vocab
from uer.errors import DataError
from uer.tasks.heads import build_task_model
from uer.tasks.siamese import PairCollator, SiameseHead, SiameseTask, encode_single

VOCAB = Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)])
TOKENIZER = SpaceTokenizer(VOCAB, do_lower_case=False)
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 32, "dropout": 0.0, "vocab_size": len(VOCAB),
        "labels_num": 3}


def task_encode(text):
    return encode_single(TOKENIZER, text, 16)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_head_classifies_u_v_their_distance_and_product():
    head = SiameseHead(config_from_dict(dict(TINY, hidden_size=2, emb_size=2, heads_num=1, labels_num=4)))
    with torch.no_grad():       # output k sums block k of the features: u, v, |u - v|, u * v
        head.classifier.weight.copy_(torch.kron(torch.eye(4), torch.ones(1, 2)))
        head.classifier.bias.zero_()
    u, v = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.5]])
    assert head(u, v).tolist() == [[-1.0, 3.5, 2.0 + 2.5, 3.0 - 1.0]]


def test_each_tower_sees_only_its_own_text():
    torch.manual_seed(0)
    model = build_task_model(config_from_dict(TINY), "siamese").eval()
    task = SiameseTask(TOKENIZER, 16)
    collate = task.collator()

    def towers(a, b):
        batch = collate([{"src_a": task_encode(a), "src_b": task_encode(b)}])
        captured = []
        model.head.forward = lambda u, v: captured.append((u, v)) or u      # record the pooled vectors
        model({k: batch[k] for k in ("src", "seg", "src_b", "seg_b")})
        return captured[0]

    u1, v1 = towers("w1 w2", "w3")
    u2, v2 = towers("w1 w2", "w4 w5 w6 w7 w8 w9 w10 w11 w12")     # another text_b, padded wider
    assert torch.allclose(u1, u2, atol=1e-6) and not torch.allclose(v1, v2)
    u3, v3 = towers("w3", "w1 w2")
    assert torch.allclose(u3, v1, atol=1e-6) and torch.allclose(v3, u1, atol=1e-6)   # one shared encoder


def test_collator_pads_both_texts_to_one_width_with_seg_one_on_real_tokens():
    items = [{"src_a": task_encode("w1"), "src_b": task_encode(" ".join(["w2"] * 9)), "label": 2},
             {"src_a": task_encode("w3 w4"), "src_b": task_encode("w5"), "label": 0}]
    batch = PairCollator(0, lambda rows: torch.tensor([r["label"] for r in rows]))(items)
    assert batch["src"].shape == batch["src_b"].shape == (2, 16)
    assert batch["seg"][0].tolist() == [1] * 3 + [0] * 13 and batch["seg_b"][0].tolist() == [1] * 11 + [0] * 5
    assert batch["src_b"][1].tolist()[:4] == [2, 10, 3, 0] and batch["labels"].tolist() == [2, 0]
    assert int(batch["tokens"]) == 3 + 11 + 4 + 3


def test_reading_pairs_and_their_errors(tmp_path):
    task = SiameseTask(TOKENIZER, 16)
    data = task.read(write(tmp_path / "t.tsv", "text_b\tlabel\ttext_a\nw1 w2\t1\tw3\nw4\t0\tw5 w6\n"), "train")
    assert [e["label"] for e in data] == [1, 0] and [e["line"] for e in data] == [2, 3]
    assert data[0]["src_a"].tolist() == [2, 8, 3] and data[0]["src_b"].tolist() == [2, 6, 7, 3]
    unlabelled = task.read(write(tmp_path / "i.tsv", "text_a\ttext_b\nw1\tw2\n"), "infer")
    assert "label" not in unlabelled[0]
    with pytest.raises(DataError, match=r"--train_path .*one\.tsv line 1: .*lacks column\(s\) \['text_b'\]"):
        task.read(write(tmp_path / "one.tsv", "label\ttext_a\n1\tw1\n"), "train")
    with pytest.raises(DataError, match=r"bad\.tsv line 3: label 'yes' is not an integer"):
        task.read(write(tmp_path / "bad.tsv", "label\ttext_a\ttext_b\n1\tw1\tw2\nyes\tw1\tw2\n"), "dev")


def test_trains_and_writes_uer_pys_prediction_file(tmp_path):
    torch.manual_seed(0)
    model = build_task_model(config_from_dict(dict(TINY, labels_num=2)), "siamese")
    task = SiameseTask(TOKENIZER, 16, output_logits=True, output_prob=True)
    rows = "".join(f"{int(i % 2 == 0)}\tw{i % 2} w7\tw{i % 3} w9\n" for i in range(12))   # label: text_a's w0
    data = task.read(write(tmp_path / "t.tsv", "label\ttext_a\ttext_b\n" + rows), "train")
    batch = task.collator()(data.examples)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0] and out["logits"].shape == (12, 2)
    lines = task.prediction_lines(data, out["logits"].detach().numpy()[:2])
    assert lines[0] == "label\tlogits\tprob"
    label, logits, prob = lines[1].split("\t")
    assert len(logits.split()) == len(prob.split()) == 2
    assert int(label) == int(np.argmax([float(x) for x in logits.split()]))
    assert sum(float(p) for p in prob.split()) == pytest.approx(1.0, abs=1e-5)
