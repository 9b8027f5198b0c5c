"""Decoder-only LLM data through preprocess.py and pretrain.py on real data (``UER_DATA_DIR``):
llm_pretrain packs CLUECorpusSmall (with document-boundary masking) and a tiny causal model's loss
falls; then llm_sft on a small JSONL this test writes (Alpaca and multi-turn chat records) continues
from that checkpoint and its loss — over response tokens only — falls too."""

import json
import os

import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main
from uer.data.dataset import IndexedDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(emb_size=64, hidden_size=64, feedforward_size=128, heads_num=2, layers_num=2, max_seq_length=128,
            dropout=0.0)


def tiny_gpt2(path) -> str:
    config = json.load(open(os.path.join(ROOT, "models", "gpt2", "small.json")))
    config.update(TINY)
    path.write_text(json.dumps(config))
    return str(path)


def pretrain(tmp_path, name, dataset, config, vocab, processor, steps=12, lr="5e-3", extra=()):
    out = str(tmp_path / name / "model.bin")
    pretrain_main(["--dataset_path", dataset, "--config_path", config, "--output_model_path", out,
                   "--data_processor", processor, "--vocab_path", vocab, "--total_steps", str(steps),
                   "--report_steps", "4", "--batch_size", "8", "--warmup", "0.05", "--learning_rate", lr,
                   "--device", "cpu", *extra])
    records = [json.loads(line) for line in open(out + ".metrics.jsonl")]
    return out, records[0]["lm_loss"], records[-1]["lm_loss"]


def sft_records(sentences):
    """Responses a few steps can learn: a yes/no judgement of the input, a copy of its first five
    characters, and a fixed reply in a second turn."""
    records = []
    for k, sentence in enumerate(sentences):
        text = sentence[:24]
        if k % 2:
            answer = "是的。" if any(c.isdigit() for c in text) else "没有。"
            records.append({"instruction": "这句话提到数字了吗？", "input": text, "output": answer})
        else:
            records.append({"messages": [{"role": "system", "content": "你是一个助手。"},
                                         {"role": "user", "content": "前五个字是什么？" + text},
                                         {"role": "assistant", "content": text[:5]},
                                         {"role": "user", "content": "谢谢。"},
                                         {"role": "assistant", "content": "不客气。"}]})
    return records


@pytest.fixture(scope="module")
def zh(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    with open(os.path.join(data_dir, "zh", "corpora", "CLUECorpusSmall_sampled.txt"), encoding="utf-8") as f:
        lines = [next(f) for _ in range(200)]
    corpus = root / "zh.txt"
    corpus.write_text("".join(lines), encoding="utf-8")
    # The corpus's own characters as the vocabulary (about 3,000; Google's 21,128 would make the output
    # softmax, the costliest step of so small a model, seven times dearer).
    prompts = "".join(json.dumps(r, ensure_ascii=False) for r in sft_records(["", ""]))
    chars = sorted({c for text in lines + [prompts] for c in text.strip() if not c.isspace()})
    chars += ["system", "user", "assistant"]       # the default chat template's role markers
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n", encoding="utf-8")
    return {"vocab": str(vocab), "corpus": str(corpus), "lines": [line.strip() for line in lines]}


def test_llm_pretrain_then_sft(zh, tmp_path):
    config = tiny_gpt2(tmp_path / "gpt2.json")
    dataset = str(tmp_path / "pretrain_ds")
    meta = preprocess_main(["--corpus_path", zh["corpus"], "--vocab_path", zh["vocab"], "--dataset_path", dataset,
                            "--data_processor", "llm_pretrain", "--seq_length", "64", "--document_mask"])
    assert meta["documents"] == 200 and meta["streams"] == ["src", "doc_start"] and meta["instances"] > 500
    item = IndexedDataset(dataset)[3]
    assert len(item["src"]) == 65 and len(item["doc_start"]) == 65
    model, first, last = pretrain(tmp_path, "pretrain", dataset, config, zh["vocab"], "llm_pretrain")
    assert last < first - 0.5, (first, last)

    jsonl = tmp_path / "sft.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sft_records(zh["lines"])),
                     encoding="utf-8")
    sft_dataset = str(tmp_path / "sft_ds")
    meta = preprocess_main(["--corpus_path", str(jsonl), "--vocab_path", zh["vocab"], "--dataset_path", sft_dataset,
                            "--data_processor", "llm_sft", "--seq_length", "64"])
    assert meta["instances"] == 200 and meta["streams"] == ["src", "loss_mask"] and "skipped" not in meta
    _, first, last = pretrain(tmp_path, "sft", sft_dataset, config, zh["vocab"], "llm_sft",
                              extra=["--pretrained_model_path", model])
    assert last < first - 0.5, (first, last)


def test_bad_sft_line_is_one_error(zh, tmp_path, capsys):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"instruction": "a", "output": "b"}\n\n{"messages": [{"role": "user", "content": "a"}]}\n',
                     encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        preprocess_main(["--corpus_path", str(jsonl), "--vocab_path", zh["vocab"], "--dataset_path",
                         str(tmp_path / "ds"), "--data_processor", "llm_sft", "--seq_length", "32"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and f"{jsonl}, line 3: the chat has no assistant message" in err[-1]
    assert "Traceback" not in "".join(err) and not os.path.exists(tmp_path / "ds")
