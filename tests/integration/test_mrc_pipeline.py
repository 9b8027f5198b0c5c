"""CMRC fine-tuning and inference end to end on the shared test_data split, tiny random model."""

import json
import os

from uer.cli.cmrc import finetune_main, infer_main

CONFIG = {"embedding": ["word", "pos", "seg"], "emb_size": 64, "hidden_size": 64, "feedforward_size": 128,
          "heads_num": 2, "layers_num": 2, "max_seq_length": 128, "dropout": 0.0, "encoder": "transformer",
          "mask": "fully_visible", "layernorm_positioning": "post", "target": ["mlm"], "data_processor": "bert"}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_cmrc_finetune_then_infer(data_dir, tmp_path):
    cmrc = os.path.join(data_dir, "zh", "test_data", "cmrc")
    vocab = os.path.join(data_dir, "vocab", "google_zh_vocab.txt")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(CONFIG))
    model = str(tmp_path / "cmrc.bin")
    results = finetune_main(["--vocab_path", vocab, "--config_path", str(config),
                             "--train_path", os.path.join(cmrc, "train.json"),
                             "--dev_path", os.path.join(cmrc, "dev.json"), "--output_model_path", model,
                             "--epochs_num", "3", "--batch_size", "32", "--seq_length", "128", "--doc_stride", "96",
                             "--learning_rate", "1e-3", "--report_steps", "1", "--warmup", "0"])
    with open(model + ".metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert 0 <= results["dev"]["f1"] <= 100 and results["dev"]["questions"] == 3
    info = read_json(model + ".task.json")
    assert info["seq_length"] == 128 and info["doc_stride"] == 96 and info["task"] == "mrc"

    # No --config_path, --seq_length or --doc_stride: they come from the files beside the model.
    prediction = str(tmp_path / "prediction.json")
    answers = infer_main(["--load_model_path", model, "--vocab_path", vocab,
                          "--test_path", os.path.join(cmrc, "test.json"), "--prediction_path", prediction])
    written = read_json(prediction)
    test = read_json(os.path.join(cmrc, "test.json"))
    questions = {qa["id"]: para["context"] for art in test["data"] for para in art["paragraphs"] for qa in para["qas"]}
    assert written == answers and set(written) == set(questions) and len(written) == 5
    for qid, answer in written.items():
        assert isinstance(answer, str) and 0 < len(answer) <= 30 and answer in questions[qid]
