"""pretrain.py with --unpad and --lm_loss_chunk_size trains the same model as without them: a tiny BERT
(mlm + sp, dropout off) on the same batches logs the same losses step after step."""

import json

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main


def test_unpad_and_chunked_loss_follow_the_plain_run(tiny_corpus, tmp_path):
    vocab = str(tiny_corpus / "vocab.txt")
    dataset = str(tmp_path / "dataset")
    # Short documents in 48-token instances: the last instance of each document is padded.
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--data_processor", "bert", "--seq_length", "48"])
    runs = {}
    for name, flags in (("plain", []), ("switched", ["--unpad", "--lm_loss_chunk_size", "8"])):
        model = str(tmp_path / f"{name}.bin")
        pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab,
                       "--config_path", str(tiny_corpus / "tiny_bert.json"), "--dropout", "0",
                       "--output_model_path", model, "--total_steps", "24", "--report_steps", "4",
                       "--batch_size", "8", "--learning_rate", "1e-3", "--device", "cpu", *flags])
        runs[name] = [json.loads(line) for line in open(model + ".metrics.jsonl")]
        written = json.load(open(model + ".config.json"))
        assert written["unpad"] == (name == "switched")
        assert written["lm_loss_chunk_size"] == (8 if name == "switched" else 0)
    plain, switched = runs["plain"], runs["switched"]
    assert len(plain) == len(switched) == 6
    for a, b in zip(plain, switched):
        for key in ("mlm_loss", "sp_loss"):
            assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(a[key])), (a["step"], key, a[key], b[key])
    assert plain[-1]["mlm_loss"] < plain[0]["mlm_loss"]
