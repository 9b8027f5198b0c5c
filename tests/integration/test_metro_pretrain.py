"""METRO-style RTD on an encoder-decoder end to end on real data from ``UER_DATA_DIR``: preprocess.py (t5
processor) + pretrain.py with models/metro/t5_base.json shrunk to tiny shapes — the total loss and the
decoder's loss fall — then the saved checkpoint is used like a plain T5: its encoder-decoder loads
strictly, scripts/generate_seq2seq.py generates from it and run_text2text.py fine-tunes it."""

import json
import os

import torch

from uer.cli.generate_seq2seq import main as generate_seq2seq_main
from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.cli.text2text import finetune_main
from uer.config import load_config
from uer.models import Model
from uer.models.pretrained import backbone_config, backbone_source
from uer.models.weights import load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(emb_size=48, hidden_size=48, feedforward_size=96, heads_num=6, attention_head_size=8, layers_num=2,
            decoder_layers_num=2, max_seq_length=128, dropout=0.0)


def test_metro_pretrains_and_its_encoder_decoder_is_a_plain_t5(data_dir, tmp_path):
    vocab = tmp_path / "zh_sentinel_vocab.txt"       # Google's zh vocabulary + [extra_id_N], as UER-py's
    google = open(os.path.join(data_dir, "vocab", "google_zh_vocab.txt"), encoding="utf-8").read().rstrip("\n")
    vocab.write_text(google + "\n" + "".join(f"[extra_id_{i}]\n" for i in range(100)), encoding="utf-8")
    with open(os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), encoding="utf-8") as f:
        lines = [next(f) for _ in range(400)]
    (tmp_path / "zh.txt").write_text("".join(lines), encoding="utf-8")
    dataset, out = str(tmp_path / "ds"), str(tmp_path / "metro.bin")
    preprocess_main(["--corpus_path", str(tmp_path / "zh.txt"), "--vocab_path", str(vocab), "--dataset_path", dataset,
                     "--data_processor", "t5", "--seq_length", "64"])
    config = json.load(open(os.path.join(ROOT, "models", "metro", "t5_base.json")))
    config.update(TINY)
    (tmp_path / "metro.json").write_text(json.dumps(config))
    pretrain_main(["--dataset_path", dataset, "--config_path", str(tmp_path / "metro.json"), "--vocab_path", str(vocab),
                   "--output_model_path", out, "--total_steps", "16", "--report_steps", "4", "--batch_size", "8",
                   "--warmup", "0.05", "--learning_rate", "1e-2", "--device", "cpu"])
    records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
    first, last = records[0], records[-1]
    assert {"mlm_loss", "rtd_loss", "rtd_acc", "lm_loss", "replaced_frac"} <= set(first)
    # The total is dominated by disc_weight 50 x RTD, which falls fastest (most tokens stay original);
    # under gradient clipping the decoder's share moves more slowly, but it moves.
    assert last["loss"] < first["loss"] - 5.0, (first, last)
    lm = [r["lm_loss"] for r in records]
    assert all(b < a for a, b in zip(lm, lm[1:])) and lm[-1] < lm[0] - 0.1, lm
    assert 0.0 < last["replaced_frac"] <= 1.0

    # The checkpoint's encoder-decoder, strictly, as a plain T5 (the generator and RTD head left out).
    saved = load_config(out + ".config.json")
    assert saved.pretrainer == "metro"
    saved.vocab_size = 21128 + 100
    plain = Model(backbone_config(saved))
    load_weights(plain, backbone_source(saved, out))
    assert not plain.config.pretrainer and plain.target.names == ["lm"]
    assert torch.isfinite(plain.embedding.word_weight()).all()

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(line[:20] + "\n" for line in lines[:3]), encoding="utf-8")
    generated = generate_seq2seq_main(["--load_model_path", out, "--vocab_path", str(vocab), "--test_path", str(prompts),
                                       "--prediction_path", str(tmp_path / "gen.txt"), "--seq_length", "32",
                                       "--tgt_seq_length", "8", "--device", "cpu"])
    assert len(generated) == 3 and (tmp_path / "gen.txt").read_text(encoding="utf-8").count("\n") == 3

    tsv = "text_a\tlabel\n" + "".join(f"{line[:16]}\t{line[16:24]}\n" for line in lines[:16] if len(line) > 30)
    (tmp_path / "t2t.tsv").write_text(tsv, encoding="utf-8")
    results = finetune_main(["--config_path", out + ".config.json", "--pretrained_model_path", out,
                             "--vocab_path", str(vocab), "--train_path", str(tmp_path / "t2t.tsv"),
                             "--dev_path", str(tmp_path / "t2t.tsv"), "--output_model_path", str(tmp_path / "ft.bin"),
                             "--seq_length", "32", "--tgt_seq_length", "12", "--epochs_num", "1", "--batch_size", "8",
                             "--device", "cpu"])
    assert "bleu" in results["dev"] and os.path.isfile(tmp_path / "ft.bin")
