"""NER end to end on MSRA-NER test_data (1000 train / 50 dev / 50 test sentences): fine-tune a tiny
random model with finetune/run_ner.py's entry point, then tag the unlabelled test file."""

import json
import os

from uer.cli.ner import finetune_main, infer_main
from uer.tasks.metrics import entity_metrics

TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 64, "hidden_size": 64, "feedforward_size": 256,
        "heads_num": 2, "layers_num": 2, "max_seq_length": 64, "dropout": 0.0, "target": ["mlm"],
        "data_processor": "mlm"}


def share_of_o(path, seq_length):
    """Token accuracy of predicting "O" everywhere, over the tokens the model scores (the first
    seq_length - 1 characters: [CLS] takes one position; every character is one vocabulary id)."""
    tags = [t for line in open(path, encoding="utf-8").read().splitlines()[1:]
            for t in line.split("\t")[1].split(" ")[: seq_length - 1]]
    return sum(t == "O" for t in tags) / len(tags)


def test_msra_ner_finetune_and_infer(data_dir, tmp_path):
    ner = os.path.join(data_dir, "zh", "test_data", "msra_ner")
    vocab = os.path.join(data_dir, "vocab", "google_zh_vocab.txt")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    model = str(tmp_path / "ner.bin")
    results = finetune_main(["--vocab_path", vocab, "--config_path", str(config),
                             "--train_path", os.path.join(ner, "train.tsv"), "--dev_path", os.path.join(ner, "dev.tsv"),
                             "--test_path", os.path.join(ner, "test.tsv"), "--output_model_path", model,
                             "--epochs_num", "3", "--batch_size", "8", "--learning_rate", "1e-3",
                             "--seq_length", "48", "--report_steps", "1000"])
    # Chance level: predicting all "O" finds no entity (F1 0) and scores the share of "O" tokens.
    dev = results["dev"]
    assert dev["f1"] > 0.02 and dev["precision"] > 0 and dev["recall"] > 0, dev
    assert dev["accuracy"] > share_of_o(os.path.join(ner, "dev.tsv"), 48), dev
    saved = json.load(open(model + ".task.json"))
    assert saved["seq_length"] == 48 and saved["label2id"]["O"] == 0 and len(saved["label2id"]) == 7

    # Inference: label2id and seq_length come from <model>.task.json; one line of tags per input
    # line, as many tags as tokens (past seq_length: "O").
    predictions = str(tmp_path / "predictions.txt")
    lines = infer_main(["--load_model_path", model, "--vocab_path", vocab,
                        "--test_path", os.path.join(ner, "test_nolabel.tsv"), "--prediction_path", predictions])
    written = open(predictions, encoding="utf-8").read().splitlines()
    inputs = [line.split(" ") for line in open(os.path.join(ner, "test_nolabel.tsv"), encoding="utf-8")
              .read().splitlines()[1:]]
    assert written == lines and len(written) == len(inputs) == 50
    assert [len(line.split(" ")) for line in written] == [len(tokens) for tokens in inputs]
    assert set(" ".join(written).split()) <= set(saved["label2id"])
    # The predictions are those of the model the test score came from.
    gold = [line.split("\t")[1].split(" ") for line in open(os.path.join(ner, "test.tsv"), encoding="utf-8")
            .read().splitlines()[1:]]
    cut = [tags[:47] for tags in gold]
    again = entity_metrics(cut, [line.split(" ")[:47] for line in written])
    assert abs(again["f1"] - results["test"]["f1"]) < 1e-9
