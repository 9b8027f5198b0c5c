"""The whole pipeline, as a user runs it: preprocess -> pretrain -> finetune -> infer."""

import json
import os


from uer.cli.classifier import finetune_main, infer_main
from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main


def metrics(prefix):
    with open(prefix + ".metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_generated_corpus_pipeline(tiny_corpus, tmp_path):
    vocab = str(tiny_corpus / "vocab.txt")
    dataset, model = str(tmp_path / "dataset"), str(tmp_path / "models" / "bert.bin")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--seq_length", "64", "--processes_num", "2", "--dup_factor", "2"])
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(tiny_corpus / "tiny_bert.json"),
                   "--output_model_path", model, "--total_steps", "60", "--report_steps", "10",
                   "--save_checkpoint_steps", "30", "--batch_size", "16", "--learning_rate", "2e-3"])
    records = metrics(model)
    assert records[-1]["mlm_loss"] < records[0]["mlm_loss"] - 0.5
    for suffix in ("", "-30", "-60", "-60.state.pt", ".config.json", ".run.json"):
        assert os.path.isfile(model + suffix), suffix
    assert {"mlm_acc", "sp_acc", "lr", "grad_norm", "tokens_per_s", "tflops_per_device"} <= set(records[-1])

    finetuned = str(tmp_path / "models" / "classifier.bin")
    results = finetune_main(["--pretrained_model_path", model, "--vocab_path", vocab,
                             "--train_path", str(tiny_corpus / "train.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
                             "--test_path", str(tiny_corpus / "test.tsv"), "--output_model_path", finetuned,
                             "--epochs_num", "8", "--batch_size", "32", "--learning_rate", "2e-3", "--seq_length", "64",
                             "--pooling", "mean"])
    assert results["dev"]["accuracy"] > 0.7 and results["test"]["accuracy"] > 0.65   # chance is ~0.5
    assert os.path.isfile(finetuned) and os.path.isfile(finetuned + ".config.json")

    predictions = str(tmp_path / "predictions.tsv")
    # No --config_path, --pooling or --seq_length: they come from the files saved beside the model.
    assert json.load(open(finetuned + ".task.json"))["seq_length"] == 64
    lines = infer_main(["--load_model_path", finetuned, "--vocab_path", vocab, "--test_path",
                        str(tiny_corpus / "test_nolabel.tsv"), "--prediction_path", predictions,
                        "--output_logits", "--output_prob"])
    written = open(predictions, encoding="utf-8").read().splitlines()
    assert written == lines and written[0] == "label\tlogits\tprob" and len(written) == 51
    labels = [int(l.split("\t")[0]) for l in written[1:]]
    gold = [int(l.split("\t")[0]) for l in open(tiny_corpus / "test.tsv", encoding="utf-8").read().splitlines()[1:]]
    agreement = sum(a == b for a, b in zip(labels, gold)) / len(gold)
    assert abs(agreement - results["test"]["accuracy"]) < 1e-9     # inference = the evaluated model
    probs = [list(map(float, l.split("\t")[2].split())) for l in written[1:]]
    assert all(abs(sum(p) - 1) < 1e-4 for p in probs)


def test_real_data_pipeline(data_dir, tmp_path):
    """CLUECorpusSmall (BERT-style) + Google's Chinese vocab -> BERT-mini -> book_review -> infer."""
    vocab = os.path.join(data_dir, "vocab", "google_zh_vocab.txt")
    corpus = os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt")
    reviews = os.path.join(data_dir, "zh", "test_data", "book_review")
    dataset, model = str(tmp_path / "dataset"), str(tmp_path / "bert_mini.bin")
    meta = preprocess_main(["--corpus_path", corpus, "--vocab_path", vocab, "--dataset_path", dataset,
                            "--seq_length", "128", "--processes_num", "2", "--data_processor", "bert",
                            "--whole_word_masking"])        # Chinese: jieba word boundaries stored
    assert meta["documents"] >= 2000 and meta["instances"] > 5000
    assert meta["streams"] == ["src", "word_cont"] and meta["word_boundaries"]["segmenter"] == "jieba"
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", "models/bert/mini.json",
                   "--output_model_path", model, "--total_steps", "36", "--report_steps", "6",
                   "--save_checkpoint_steps", "36", "--batch_size", "16", "--learning_rate", "5e-4",
                   "--warmup", "0.1", "--whole_word_masking"])
    records = metrics(model)
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    finetuned = str(tmp_path / "classifier.bin")
    results = finetune_main(["--pretrained_model_path", model, "--vocab_path", vocab,
                             "--train_path", os.path.join(reviews, "train.tsv"),
                             "--dev_path", os.path.join(reviews, "dev.tsv"), "--test_path", os.path.join(reviews, "test.tsv"),
                             "--output_model_path", finetuned, "--epochs_num", "1", "--batch_size", "16",
                             "--seq_length", "128", "--learning_rate", "1e-4"])
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0 and os.path.isfile(finetuned)
    predictions = str(tmp_path / "pred.tsv")
    infer_main(["--load_model_path", finetuned, "--vocab_path", vocab, "--test_path",
                os.path.join(reviews, "test_nolabel.tsv"), "--prediction_path", predictions])
    assert len(open(predictions, encoding="utf-8").read().splitlines()) == 51
