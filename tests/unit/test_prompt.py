"""Prompt (cloze) classification: prompt parsing and its errors, the encoding of the template, the
cloze head's class scores against a manual computation, the pretrained MLM head's weights being the
ones used (zero-shot), few-shot fine-tuning improving on zero-shot, and the prediction file."""

import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uer.cli.tasks import finetune, infer
from uer.config import config_from_dict, save_config
from uer.data.tokenizers import BertTokenizer
from uer.data.vocab import Vocab
from uer.errors import ConfigError, DataError
from uer.models import build_model
from uer.models.weights import save_state
from uer.tasks.prompt import PromptTask, build_prompt, encode_prompt, read_prompt_file
from uer.tasks.runner import load_pretrained

WORDS = [f"w{i}" for i in range(30)]
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["good", "bad", "##ish"]
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 32, "hidden_size": 32, "feedforward_size": 64,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 64, "dropout": 0.0, "target": ["mlm"]}


@pytest.fixture
def tokenizer():
    return BertTokenizer(Vocab(TOKENS))


def ids(tokenizer, *tokens):
    return [tokenizer.vocab.token_to_id(t) for t in tokens]


def write_prompts(path, prompts):
    path.write_text(json.dumps(prompts), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------ prompt file

def test_prompt_pieces_labels_and_multi_piece_answer_words(tokenizer):
    prompt = build_prompt(tokenizer, "[TEXT_A] w20 w21 [ANS]", {"1": ["good", "w5"], "0": "badish"}, "p")
    assert prompt.labels == ["0", "1"]                           # numeric labels in numeric order
    assert prompt.pieces == ["[TEXT_A]", ids(tokenizer, "w20", "w21"), "[ANS]"]
    assert prompt.word_tokens == [[ids(tokenizer, "bad", "##ish")], [ids(tokenizer, "good"), ids(tokenizer, "w5")]]
    assert prompt.answer_length == 2 and prompt.literal_length == 2 and not prompt.pair
    named = build_prompt(tokenizer, "[TEXT_A] [SEP] [TEXT_B] [ANS]", {"pos": "good", "neg": "bad"}, "p")
    assert named.labels == ["pos", "neg"] and named.pair          # named labels keep the file's order


@pytest.mark.parametrize("template,words,match", [
    ("[TEXT_A] w1", {"0": "w2"}, r"p, key 'template'.*\[ANS\] 0 time"),
    ("[TEXT_A] [ANS] [ANS]", {"0": "w2"}, r"\[ANS\] 2 time"),
    ("w1 [ANS]", {"0": "w2"}, r"\[TEXT_A\] 0 time"),
    ("[TEXT_A] [ANS]", {}, "key 'answer_words': empty"),
    ("[TEXT_A] [ANS]", {"0": "zebra"}, "label '0': the word 'zebra' is not in the vocabulary"),
    ("[TEXT_A] [ANS]", {"0": []}, "label '0': expected a word"),
    ("[TEXT_A] [ANS]", {"0": "w3", "1": ["w4", "w3"]}, "labels '0' and '1' share an answer word"),
])
def test_bad_prompts_are_one_config_error_naming_the_key(tokenizer, template, words, match):
    with pytest.raises(ConfigError, match=match):
        build_prompt(tokenizer, template, words, "p")


def test_prompt_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="--prompt_path .*nope.json does not exist"):
        read_prompt_file(str(tmp_path / "nope.json"), "x")
    path = write_prompts(tmp_path / "p.json", {"a": {"template": "[TEXT_A] [ANS]", "answer_words": {"0": "w1"}},
                                               "b": {"template": 3}})
    assert read_prompt_file(path, "a")["answer_words"] == {"0": "w1"}
    with pytest.raises(ConfigError, match="no prompt 'c'; --prompt_id must be one of: a, b"):
        read_prompt_file(path, "c")
    with pytest.raises(ConfigError, match="prompt 'b': needs a \"template\" string"):
        read_prompt_file(path, "b")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not readable JSON"):
        read_prompt_file(str(tmp_path / "broken.json"), "a")


# ------------------------------------------------------------------------------------------------ encoding

def test_encoding_places_the_masks_and_truncates_the_text_not_the_template(tokenizer):
    prompt = build_prompt(tokenizer, "[TEXT_A] w20 [ANS] w21", {"0": "w28", "1": "badish"}, "p")
    e = encode_prompt(prompt, tokenizer, "w1 w2", None, 32)
    cls_, sep, mask = ids(tokenizer, "[CLS]", "[SEP]", "[MASK]")
    want = [cls_] + ids(tokenizer, "w1", "w2", "w20") + [mask, mask] + ids(tokenizer, "w21") + [sep]
    assert e["src"].tolist() == want
    assert e["mask_positions"].tolist() == [4, 5] and e["seg_a_len"] == len(e["src"])
    long = encode_prompt(prompt, tokenizer, " ".join(WORDS), None, 12)
    assert len(long["src"]) == 12 and long["src"][long["mask_positions"]].tolist() == [mask, mask]
    assert long["src"][-2:].tolist() == ids(tokenizer, "w21", "[SEP]")
    pair = build_prompt(tokenizer, "[TEXT_A] [ANS] [TEXT_B]", {"0": "w28"}, "p")
    p = encode_prompt(pair, tokenizer, "w1 w2 w3 w4", "w5", 8)          # the longer text loses first
    assert p["src"].tolist() == [cls_] + ids(tokenizer, "w1", "w2", "w3") + [sep, mask] + ids(tokenizer, "w5") + [sep]
    with pytest.raises(ConfigError, match="--seq_length 5 leaves no room"):
        PromptTask(tokenizer, 5, prompt)


def test_read_errors_name_file_and_line(tokenizer, tmp_path):
    prompt = build_prompt(tokenizer, "[TEXT_A] [ANS]", {"neg": "bad", "pos": "good"}, "prompts.json, prompt 'x'")
    task = PromptTask(tokenizer, 16, prompt)
    (tmp_path / "t.tsv").write_text("label\ttext_a\npos\tw1\nmaybe\tw2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.tsv line 3: label 'maybe' has no answer word.*labels: neg, pos"):
        task.read(str(tmp_path / "t.tsv"), "train")
    (tmp_path / "pair.tsv").write_text("label\ttext_a\ttext_b\npos\tw1\tw2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pair\.tsv line 1: the file has a text_b column.*no \[TEXT_B\]"):
        task.read(str(tmp_path / "pair.tsv"), "train")
    data = task.read(str(tmp_path / "t.tsv"), "infer")         # an inference file's labels are not read
    assert len(data) == 2 and "label" not in data[0]


# ------------------------------------------------------------------------------------------------ the head

def tiny_config(tokenizer, **overrides):
    return config_from_dict(dict(TINY, vocab_size=len(tokenizer.vocab), **overrides))


@pytest.mark.parametrize("tie", [True, False])
def test_class_scores_are_the_label_words_log_probabilities_at_the_masks(tokenizer, tie):
    prompt = build_prompt(tokenizer, "[TEXT_A] w20 [ANS]", {"0": "badish", "1": ["good", "w5"]}, "p")
    task = PromptTask(tokenizer, 16, prompt)
    config = tiny_config(tokenizer, tie_weights=tie)
    config.labels_num = 2
    torch.manual_seed(0)
    model = task.build_model(config).eval()
    if tie:
        assert model.head.output_weight_tensor() is model.embedding.word_weight()
    assert all(k.startswith(("head.linear_1", "head.norm", "head.output_")) for k in model.state_dict()
               if k.startswith("head."))
    batch = task.collator()([encode_prompt(prompt, tokenizer, t, None, 16) for t in ("w1 w2", "w3")])
    scores = model(batch)["logits"]
    assert scores.shape == (2, 2)
    logp = F.log_softmax(model.head.logits(model.encode(batch["src"], batch["seg"]), batch["mask_positions"]), -1)
    bad, ish, good, w5 = ids(tokenizer, "bad", "##ish", "good", "w5")
    want0 = (logp[:, 0, bad] + logp[:, 1, ish]) / 2
    want1 = torch.logaddexp(logp[:, 0, good], logp[:, 0, w5])
    assert torch.allclose(scores, torch.stack([want0, want1], -1), atol=1e-5)
    out = model(dict(batch, labels=torch.tensor([1, 0])))
    assert torch.allclose(out["loss"], F.cross_entropy(scores, torch.tensor([1, 0])))


def pretrained_checkpoint(tokenizer, tmp_path, favoured=None, boost=20.0, tie=True):
    """A random pretraining model (MLM target) whose MLM bias makes ``favoured`` the likely word."""
    torch.manual_seed(1)
    config = tiny_config(tokenizer, tie_weights=tie)
    model = build_model(config)
    if favoured is not None:
        with torch.no_grad():
            model.target.mlm.output_bias[tokenizer.vocab.token_to_id(favoured)] += boost
    path = str(tmp_path / f"pre_{favoured}_{tie}.bin")
    save_state(dict(model.state_dict()), path)
    save_config(config, path + ".config.json")
    return config, path


@pytest.mark.parametrize("tie", [True, False])
def test_zero_shot_prediction_follows_the_pretrained_mlm_head(tokenizer, tmp_path, tie):
    prompt = build_prompt(tokenizer, "[TEXT_A] w20 [ANS]", {"0": "bad", "1": "good"}, "p")
    task = PromptTask(tokenizer, 16, prompt)
    batch = task.collator()([encode_prompt(prompt, tokenizer, " ".join(random.Random(i).sample(WORDS, 4)), None, 16)
                             for i in range(12)])
    for favoured, label in (("good", 1), ("bad", 0)):
        config, path = pretrained_checkpoint(tokenizer, tmp_path, favoured, tie=tie)
        config.labels_num = 2
        model = task.build_model(config)
        load_pretrained(model, config, path)
        model.eval()
        assert model(batch)["logits"].argmax(-1).tolist() == [label] * 12, favoured


# ------------------------------------------------------------------------------------------------ end to end

def test_few_shot_fine_tuning_beats_zero_shot_and_predicts_label_names(tokenizer, tmp_path):
    """The pretrained MLM head prefers 'bad' (zero-shot: every example 'neg'); 48 examples of
    'pos = w1 occurs' fine-tune it well above that.  Inference reads the saved prompt."""
    rng = random.Random(3)
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")

    def rows(n):
        out = []
        for i in range(n):
            words = rng.sample([w for w in WORDS if w != "w1"], 4) + (["w1"] if i % 2 else [])
            rng.shuffle(words)
            out.append(f"{'pos' if i % 2 else 'neg'}\t{' '.join(words)}")
        return out
    train = tmp_path / "train.tsv"
    train.write_text("label\ttext_a\n" + "\n".join(rows(48)) + "\n", encoding="utf-8")
    dev = tmp_path / "dev.tsv"
    dev.write_text("label\ttext_a\n" + "\n".join(rows(24)) + "\n", encoding="utf-8")
    prompts = write_prompts(tmp_path / "prompts.json", {"w1": {"template": "[TEXT_A] w20 [ANS]",
                                                               "answer_words": {"neg": "bad", "pos": "good"}}})
    config, pretrained = pretrained_checkpoint(tokenizer, tmp_path, "bad", boost=3.0)
    task = PromptTask(tokenizer, 16, build_prompt(tokenizer, "[TEXT_A] w20 [ANS]", {"neg": "bad", "pos": "good"}, "p"))
    dev_data = task.read(str(dev), "dev")
    config.labels_num = 2
    model = task.build_model(config)
    load_pretrained(model, config, pretrained)
    with torch.no_grad():
        zero_shot = task.evaluate(dev_data, model.eval()(task.collator()(dev_data.examples))["logits"].numpy())
    assert zero_shot["accuracy"] == pytest.approx(0.5)
    out = str(tmp_path / "prompt.bin")
    results = finetune("classifier_prompt", [
        "--vocab_path", str(tmp_path / "vocab.txt"), "--pretrained_model_path", pretrained,
        "--prompt_path", prompts, "--prompt_id", "w1", "--train_path", str(train), "--dev_path", str(dev),
        "--output_model_path", out, "--epochs_num", "6", "--batch_size", "8", "--learning_rate", "3e-3",
        "--seq_length", "16", "--warmup", "0.0"])
    assert results["dev"]["accuracy"] >= 0.9 > zero_shot["accuracy"]
    prediction = str(tmp_path / "pred.tsv")
    infer("classifier_prompt", ["--vocab_path", str(tmp_path / "vocab.txt"), "--load_model_path", out,
                                "--test_path", str(dev), "--prediction_path", prediction, "--output_prob"])
    lines = open(prediction, encoding="utf-8").read().splitlines()
    assert lines[0] == "label\tprob" and len(lines) == 25
    gold = [r.split("\t")[0] for r in open(dev, encoding="utf-8").read().splitlines()[1:]]
    predicted = [line.split("\t")[0] for line in lines[1:]]
    assert np.mean([p == g for p, g in zip(predicted, gold)]) == pytest.approx(results["dev"]["accuracy"])
    assert all(abs(sum(map(float, line.split("\t")[1].split())) - 1) < 1e-4 for line in lines[1:])
    other = write_prompts(tmp_path / "other.json", {"x": {"template": "[TEXT_A] [ANS]",
                                                          "answer_words": {"0": "bad", "1": "good"}}})
    with pytest.raises(ConfigError, match=r"labels \['0', '1'\] but the model was fine-tuned for \['neg', 'pos'\]"):
        infer("classifier_prompt", ["--vocab_path", str(tmp_path / "vocab.txt"), "--load_model_path", out,
                                    "--test_path", str(dev), "--prediction_path", prediction,
                                    "--prompt_path", other, "--prompt_id", "x"])
