"""The text2text task (uer/tasks/text2text.py) and its metrics (uer/tasks/generation_metrics.py):
reading UER-py's TSV, the decoder fields, the model's two forward modes, loading a pretrained
encoder-decoder, sacreBLEU, our ROUGE against hand-computed values, exact match."""

import argparse
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uer.config import config_from_dict
from uer.data.tokenizers import BertTokenizer
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.generation import GenerationSettings, generate_seq2seq
from uer.models import build_model
from uer.models.weights import save_state
from uer.tasks.generation_metrics import (bleu_tokenizer_for, corpus_bleu, exact_match, generation_scores,
                                          lcs_length, rouge_l, rouge_n, rouge_units)
from uer.tasks.runner import load_pretrained
from uer.tasks.text2text import NOT_GENERATED, Text2TextTask, check_saved_target

sacrebleu = pytest.importorskip("sacrebleu")

SRC_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog"]
TGT_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "猫", "狗", "坐", "在", "上"]
TINY = {"embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"], "emb_size": 16, "hidden_size": 16,
        "feedforward_size": 32, "heads_num": 2, "layers_num": 1, "decoder_layers_num": 1, "max_seq_length": 32,
        "dropout": 0.0, "encoder": "transformer", "decoder": "transformer", "mask": "fully_visible",
        "target": ["lm"], "tie_weights": True}


def tokenizers():
    return BertTokenizer(Vocab(SRC_TOKENS)), BertTokenizer(Vocab(TGT_TOKENS))


def task(tgt_seq_length=8, **kwargs):
    src, tgt = tokenizers()
    return Text2TextTask(src, 16, tgt, tgt_seq_length, **kwargs)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def config(**changes):
    values = {**TINY, "vocab_size": len(SRC_TOKENS), "tgt_vocab_size": len(TGT_TOKENS), **changes}
    return config_from_dict(values)


# ------------------------------------------------------------------------------------------------ data

def test_reads_text_a_as_source_and_label_as_target_in_the_target_vocabulary(tmp_path):
    t = task()
    data = t.read(write(tmp_path / "train.tsv", "text_a\tlabel\nthe cat\t猫 坐\n"), "train")
    (example,) = data.examples
    assert example["src"].tolist() == [2, 5, 6, 3]                 # [CLS] the cat [SEP], source ids
    assert example["tgt"].tolist() == [5, 7, 3]                    # 猫 坐 [SEP], target ids
    assert example["reference"] == "猫坐" and example["line"] == 2  # as the target tokenizer gives it back


def test_text_b_is_joined_to_text_a_with_sep(tmp_path):
    data = task().read(write(tmp_path / "t.tsv", "label\ttext_a\ttext_b\n猫\tthe cat\tsat on\n"), "dev")
    assert data.examples[0]["src"].tolist() == [2, 5, 6, 3, 7, 8, 3]


def test_targets_are_cut_to_tgt_seq_length_keeping_the_end_token(tmp_path):
    data = task(tgt_seq_length=3).read(write(tmp_path / "t.tsv", "text_a\tlabel\nthe\t猫 狗 坐 在 上\n"), "train")
    assert data.examples[0]["tgt"].tolist() == [5, 6, 3]
    assert data.examples[0]["reference"] == "猫狗坐在上"                 # scored against the whole target


def test_a_missing_label_column_names_the_file(tmp_path):
    path = write(tmp_path / "nolabel.tsv", "text_a\nthe cat\n")
    with pytest.raises(DataError, match=r"--train_path .*nolabel\.tsv line 1.*label"):
        task().read(path, "train")
    assert "tgt" not in task().read(path, "infer").examples[0]      # inference needs no label


def test_an_empty_target_names_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"empty\.tsv line 3: the label"):
        task().read(write(tmp_path / "empty.tsv", "text_a\tlabel\nthe\t猫\ncat\t\n"), "train")


def test_collator_shifts_the_target_behind_the_start_token_and_ignores_padding(tmp_path):
    t = task()
    data = t.read(write(tmp_path / "t.tsv", "text_a\tlabel\nthe cat\t猫 坐\nthe\t狗\n"), "train")
    batch = t.collator()(data.examples)
    assert batch["tgt_out"][0, :3].tolist() == [5, 7, 3] and batch["tgt_in"][0, :3].tolist() == [2, 5, 7]
    assert batch["tgt_in"][1, :2].tolist() == [2, 6] and batch["tgt_seg"][1].tolist()[:3] == [1, 1, 0]
    assert batch["labels"][1, :3].tolist() == [6, 3, -100]
    assert batch["seg"][0, :5].tolist() == [1, 1, 1, 1, 0]
    assert "labels" not in t.collator()([{"src": np.array([2, 5, 3])}])


def test_a_config_s_decoder_start_token_starts_training_targets_and_generation(tmp_path):
    """A converted T5 starts its decoder from <pad> (decoder_start_token_id 0), not [CLS]."""
    t = task()
    t.prepare(None, config(decoder_start_token_id=0))
    data = t.read(write(tmp_path / "t.tsv", "text_a\tlabel\nthe cat\t猫 坐\n"), "train")
    batch = t.collator()(data.examples)
    assert batch["tgt_in"][0, :3].tolist() == [0, 5, 7] and batch["tgt_out"][0, :3].tolist() == [5, 7, 3]
    assert t.build_model(config(decoder_start_token_id=0)).start_id == 0


# ------------------------------------------------------------------------------------------------ model

def test_forward_trains_with_labels_and_generates_without(tmp_path):
    torch.manual_seed(0)
    t = task(tgt_seq_length=5)
    cfg = config()
    t.prepare(None, cfg)
    model = t.build_model(cfg).eval()
    data = t.read(write(tmp_path / "t.tsv", "text_a\tlabel\nthe cat\t猫 坐\nsat on the mat\t狗\n"), "train")
    batch = t.collator()(data.examples)
    out = model(batch)
    memory = model.encode(batch["src"], batch["seg"])
    logits = model.logits(batch["tgt_in"], memory, batch["seg"], batch["tgt_seg"])
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    assert torch.allclose(out["loss"], expected, atol=1e-6)
    batch.pop("labels")
    generated = model(batch)["logits"]
    assert generated.shape == (2, 5)
    reference = generate_seq2seq(model, [e["src"].tolist() for e in data.examples], t.settings, t.start_id)
    for row, ids in zip(generated.long().tolist(), reference):
        assert row[:len(ids)] == ids and all(v == NOT_GENERATED for v in row[len(ids):])


def test_hypotheses_drop_the_end_token_and_the_fill():
    t = task()
    outputs = np.array([[5, 7, 3, -1], [6, -1, -1, -1], [-1, -1, -1, -1]], dtype=np.float32)
    assert t.hypotheses(outputs) == ["猫坐", "狗", ""]
    assert t.prediction_lines(None, outputs) == ["label", "猫坐", "狗", ""]


def test_a_pretrained_encoder_decoder_loads_whole_including_an_untied_output_layer(tmp_path):
    cfg = config(tie_weights=False)
    torch.manual_seed(1)
    pretrained = build_model(cfg)
    path = str(tmp_path / "pre.bin")
    save_state(pretrained.state_dict(), path)
    t = task()
    t.prepare(None, cfg)
    torch.manual_seed(2)
    model = t.build_model(cfg)
    load_pretrained(model, cfg, path)
    for name, value in pretrained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_lora_trains_the_adapters_alone():
    from uer.models.lora import LoraConfig
    from uer.tasks.runner import FinetuneSettings, attach_adapters
    t = task()
    cfg = config()
    t.prepare(None, cfg)
    model = t.build_model(cfg)
    keys = attach_adapters(model, FinetuneSettings("unused.bin", lora=LoraConfig(r=2)))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert keys and trainable and all("lora_" in n for n in trainable)


def test_configs_that_cannot_serve_the_task_are_refused():
    with pytest.raises(ConfigError, match="no \"decoder\""):
        encoder_only = {k: v for k, v in TINY.items() if k not in ("decoder", "tgt_embedding", "decoder_layers_num")}
        task().prepare(None, config_from_dict(dict(encoder_only, target=["mlm"], vocab_size=len(SRC_TOKENS))))
    with pytest.raises(ConfigError, match="share_embedding"):
        task().prepare(None, config(share_embedding=True, tgt_vocab_size=0))
    with pytest.raises(ConfigError, match="target vocabulary of 99 tokens"):
        task().prepare(None, config(tgt_vocab_size=99))
    with pytest.raises(ConfigError, match="--tgt_seq_length 40 exceeds"):
        task(tgt_seq_length=40).prepare(None, config())


def test_inference_checks_the_target_tokenizer_against_the_saved_one():
    src, tgt = tokenizers()
    saved = {"tgt_tokenizer": tgt.describe()}
    check_saved_target(saved, tgt, True)
    with pytest.raises(ConfigError, match="pass it with --tgt_vocab_path"):
        check_saved_target(saved, src, False)
    with pytest.raises(ConfigError, match="differs"):
        check_saved_target({"tgt_tokenizer": src.describe()}, tgt, True)
    with pytest.raises(ConfigError, match="drop"):
        check_saved_target({"tgt_tokenizer": None}, tgt, True)


def test_flags_give_generation_settings_and_the_metric():
    parser = argparse.ArgumentParser()
    Text2TextTask.add_args(parser, training=True)
    args = parser.parse_args(["--tgt_seq_length", "6", "--beam_width", "3", "--metric", "rouge_l"])
    src, _ = tokenizers()
    args.seq_length, args.tokenizer, args.do_lower_case = 16, "bert", True
    t = Text2TextTask.from_args(src, args, {})
    assert isinstance(t.settings, GenerationSettings)
    assert (t.settings.beam_width, t.settings.max_new_tokens, t.settings.eos_id) == (3, 6, 3)
    assert t.primary_metric == "rouge_l" and t.tgt_tokenizer is src


# ------------------------------------------------------------------------------------------------ metrics

HYPOTHESES = ["the cat sat on the mat", "a dog barked at the moon", "it is raining today"]
REFERENCES = ["the cat sat on a mat", "the dog barked loudly at the moon", "it rains today"]


def test_bleu_is_sacrebleus_corpus_bleu():
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize="13a").score
    assert corpus_bleu(HYPOTHESES, REFERENCES, "13a") == pytest.approx(expected, abs=1e-9)
    assert 0 < expected < 100
    zh_h, zh_r = ["我爱北京天安门", "今天天气很好"], ["我爱北京的天安门", "今天天气不错"]
    assert generation_scores(zh_h, zh_r)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="zh").score, abs=1e-9)
    assert corpus_bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)


def test_bleu_tokenizer_follows_the_references_script():
    assert bleu_tokenizer_for(["猫坐在垫子上"], "auto") == "zh"
    assert bleu_tokenizer_for(["the cat"], "auto") == "13a"
    assert bleu_tokenizer_for(["the cat"], "char") == "char"
    with pytest.raises(ConfigError, match="--bleu_tokenize"):
        bleu_tokenizer_for(["x"], "nltk")


def test_missing_sacrebleu_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(ConfigError, match="pip install sacrebleu"):
        corpus_bleu(["a"], ["a"])


def test_rouge_against_hand_computed_values():
    # hypothesis 3 words, all in the 6-word reference: P 1, R 1/2 -> F1 2/3; bigrams 2 of 5 -> F1 4/7
    assert rouge_n("the cat sat", "the cat sat on the mat", 1) == pytest.approx(2 / 3)
    assert rouge_n("the cat sat", "the cat sat on the mat", 2) == pytest.approx(4 / 7)
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    # Chinese: one unit per character; 3 of 4 shared, bigrams 1 of 3, LCS 我北京
    assert rouge_n("我爱北京", "我在北京", 1) == pytest.approx(0.75)
    assert rouge_n("我爱北京", "我在北京", 2) == pytest.approx(1 / 3)
    assert rouge_l("我爱北京", "我在北京") == pytest.approx(0.75)
    # LCS is a subsequence, not a substring; clipped counts (the hypothesis repeats "the")
    assert lcs_length("a b c d".split(), "b a d c".split()) == 2
    assert rouge_l("a b c d", "b a d c") == pytest.approx(0.5)
    assert rouge_n("the the the", "the cat", 1) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert rouge_units("Hello, World! 2024年") == ["hello", "world", "2024", "年"]
    assert rouge_l("", "the cat") == 0.0 and rouge_n("the", "", 1) == 0.0


def test_exact_match_and_the_score_set():
    assert exact_match(["a b", " c ", "d"], ["a b", "c", "e"]) == pytest.approx(2 / 3)
    scores = generation_scores(REFERENCES, REFERENCES)
    assert scores == {"exact_match": 1.0, "bleu": pytest.approx(100.0), "rouge_1": 1.0, "rouge_2": 1.0,
                      "rouge_l": 1.0}
