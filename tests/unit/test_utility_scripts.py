"""UER-py's utility scripts, each run through its ``main(argv)`` on tiny models built here:
cloze_test, average_models, topn_words_indep, topn_words_dep, extract_embeddings,
dynamic_vocab_adapter, diff_vocab."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uer.cli.average_models import main as average_main
from uer.cli.cloze_test import main as cloze_main
from uer.cli.diff_vocab import main as diff_main
from uer.cli.dynamic_vocab_adapter import main as adapter_main
from uer.cli.extract_embeddings import main as embeddings_main
from uer.cli.topn_words_dep import main as dep_main
from uer.cli.topn_words_indep import main as indep_main
from uer.config import config_from_dict, load_config, save_config
from uer.data.vocab import Vocab
from uer.models import Model
from uer.models.model import build_model
from uer.models.weights import load_weights, model_state, read_weights, save_state

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "cat", "dog", "fish", "bird", "sat", "ran", "on", "under", "mat", "rug", "big", "small",
         "red", "blue", "and", "or", "is", "was"] + [f"w{i}" for i in range(50)]
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 2, "max_seq_length": 32, "dropout": 0.0, "target": ["mlm", "sp"]}


def tiny_config(vocab_size, **extra):
    return config_from_dict({**TINY, "vocab_size": vocab_size, **extra})


def save_checkpoint(model, path, config, dtype=None):
    state = model_state(model)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    save_state(state, path)
    save_config(config, str(path) + ".config.json")
    return state


@pytest.fixture
def tiny(tmp_path):
    """A word-level vocabulary (75 tokens: 53 padding rows), a tiny BERT saved with its config beside."""
    vocab_path = tmp_path / "vocab.txt"
    vocab_path.write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    vocab = Vocab.load(str(vocab_path))
    config = tiny_config(len(vocab))
    torch.manual_seed(0)
    model = build_model(config).eval()
    path = tmp_path / "model.bin"
    save_checkpoint(model, path, config)
    return tmp_path, vocab, config, model, path


def space(*flags):
    return ["--vocab_path", flags[0], "--tokenizer", "space", *flags[1:]]


def assert_one_error(capsys, call, *needles):
    with pytest.raises(SystemExit) as e:
        call()
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


# ------------------------------------------------------------------------------------------ cloze

def test_cloze_top_n_follows_the_mlm_head(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    with torch.no_grad():           # a hand-set output bias dominates: the top 3 are known
        bias = model.target.mlm.output_bias
        bias.zero_()
        for token, value in (("cat", 300.0), ("dog", 200.0), ("fish", 100.0)):
            bias[vocab.token_to_id(token)] = value
    save_checkpoint(model, path, config)
    test = root / "cloze.txt"
    test.write_text("the [MASK] sat on the mat\n\nthe big [MASK] ran [MASK] the rug\n", encoding="utf-8")
    out = root / "pred.txt"
    text = cloze_main(["--load_model_path", str(path), *space(str(root / "vocab.txt")), "--test_path", str(test),
                       "--prediction_path", str(out), "--topn", "3", "--device", "cpu"])
    assert out.read_text(encoding="utf-8") == text
    assert text == ("[CLS] the [MASK] sat on the mat [SEP]\nPredicted answer: cat dog fish\n\n"
                    "[CLS] the big [MASK] ran [MASK] the rug [SEP]\nPredicted answer: cat dog fish\n"
                    "Predicted answer: cat dog fish\n\n")


def test_cloze_predicts_each_masked_position(tiny, tmp_path):
    """With a random head, the top-n at every mask equals the head applied to the full sequence."""
    root, vocab, config, model, path = tiny
    sentence = "the [MASK] sat on [MASK] big rug"
    (root / "t.txt").write_text(sentence + "\n", encoding="utf-8")
    text = cloze_main(["--load_model_path", str(path), *space(str(root / "vocab.txt")), "--test_path",
                       str(root / "t.txt"), "--prediction_path", str(root / "p.txt"), "--topn", "5"])
    ids = [vocab.cls_id] + [vocab.token_to_id(t) for t in sentence.split()] + [vocab.sep_id]
    src = torch.tensor([ids])
    with torch.no_grad():
        hidden = model.encode(src, torch.ones_like(src))
        logits = model.target.mlm.logits(hidden, torch.arange(len(ids)).unsqueeze(0))[0]
    expected = [" ".join(vocab.tokens[i] for i in logits[p].topk(5).indices) for p in (2, 5)]
    lines = text.splitlines()
    assert lines[1:3] == [f"Predicted answer: {e}" for e in expected]
    assert expected[0] != expected[1]


def test_cloze_masks_one_random_token_like_uer_py(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    (root / "t.txt").write_text("the cat sat on the mat\n", encoding="utf-8")
    args = ["--load_model_path", str(path), *space(str(root / "vocab.txt")), "--test_path", str(root / "t.txt"),
            "--prediction_path", str(root / "p.txt"), "--seed", "3"]
    lines = cloze_main(args).splitlines()
    assert len(lines) == 4 and lines[3] == ""
    shown = lines[0].split()
    assert shown[0] == "[CLS]" and shown[-1] == "[SEP]" and shown.count("[MASK]") == 1
    position = shown.index("[MASK]")
    assert lines[2] == "Correct answer: " + "the cat sat on the mat".split()[position - 1]
    assert len(lines[1].split()) == 2 + 10          # "Predicted answer:" + the default top 10
    assert cloze_main(args).splitlines() == lines   # --seed makes it repeatable


def test_cloze_errors(tiny, tmp_path, capsys):
    root, vocab, config, model, path = tiny
    (root / "t.txt").write_text("the [MASK] sat\n", encoding="utf-8")
    base = ["--load_model_path", str(path), *space(str(root / "vocab.txt")), "--test_path", str(root / "t.txt")]
    assert_one_error(capsys, lambda: cloze_main(base + ["--prediction_path", str(root / "t.txt")]),
                     "--prediction_path", "same file as --test_path")
    # A fine-tuning-style checkpoint without an mlm target.
    other = root / "lm.bin"
    lm_config = tiny_config(len(vocab), target=["sp"])
    save_checkpoint(build_model(lm_config), other, lm_config)
    assert_one_error(capsys, lambda: cloze_main(["--load_model_path", str(other), *base[2:],
                                                 "--prediction_path", str(root / "p.txt")]), "mlm")
    # A vocabulary that is not the model's.
    small = root / "small.txt"
    small.write_text("\n".join(SPECIALS + WORDS[:10]) + "\n", encoding="utf-8")
    assert_one_error(capsys, lambda: cloze_main(["--load_model_path", str(path), *space(str(small)), "--test_path",
                                                 str(root / "t.txt"), "--prediction_path", str(root / "p.txt")]),
                     "vocab_size 75", "15 tokens")
    assert not (root / "p.txt").exists()


# ---------------------------------------------------------------------------------------- average

def test_average_models_is_the_mean_in_the_original_dtype(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    states = []
    for seed, dtype in ((1, torch.float16), (2, torch.float16), (3, torch.float16)):
        torch.manual_seed(seed)
        states.append(save_checkpoint(build_model(config), root / f"m{seed}.bin", config, dtype))
    out = root / "avg.bin"
    average_main(["--model_list_path", *(str(root / f"m{s}.bin") for s in (1, 2, 3)), "--output_model_path", str(out)])
    averaged = read_weights(out)
    assert set(averaged) == set(states[0])
    for key, value in averaged.items():
        assert value.dtype == torch.float16
        mean = sum(s[key].float() for s in states) / 3
        assert torch.equal(value, mean.half()), key
    assert load_config(str(out) + ".config.json").to_dict() == config.to_dict()
    fresh = build_model(config)
    load_weights(fresh, str(out))       # the average loads strictly into the model


def test_average_models_refuses_different_models(tiny, tmp_path, capsys):
    root, vocab, config, model, path = tiny
    state = model_state(model)
    missing = dict(state)
    dropped = sorted(state)[len(state) // 2]
    del missing[dropped]
    save_state(missing, root / "missing.bin")
    assert_one_error(capsys, lambda: average_main(["--model_list_path", str(path), str(root / "missing.bin"),
                                                   "--output_model_path", str(root / "o.bin")]), dropped)
    shaped = dict(state)
    key = "embedding.word.embedding.weight"
    shaped[key] = torch.zeros(192, 16)
    save_state(shaped, root / "shaped.bin")
    assert_one_error(capsys, lambda: average_main(["--model_list_path", str(path), str(root / "shaped.bin"),
                                                   "--output_model_path", str(root / "o.bin")]), key, "(192, 16)")
    assert_one_error(capsys, lambda: average_main(["--model_list_path", str(path), str(root / "shaped.bin"),
                                                   "--output_model_path", str(path)]), "same file")
    assert not (root / "o.bin").exists()


# ------------------------------------------------------------------------------------- neighbours

def test_topn_words_indep_finds_a_copied_embedding(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    cat, dog = vocab.token_to_id("cat"), vocab.token_to_id("dog")
    with torch.no_grad():
        table = model.embedding.word.embedding.weight
        table[dog] = table[cat] * 2.0          # same direction: cosine 1
        table[len(vocab) + 3] = table[cat]     # a padding row: never a candidate
    save_checkpoint(model, path, config)
    (root / "words.txt").write_text("cat\nnot_a_word\n", encoding="utf-8")
    out = root / "n.txt"
    text = indep_main(["--load_model_path", str(path), "--vocab_path", str(root / "vocab.txt"),
                       "--test_path", str(root / "words.txt"), "--topn", "4", "--prediction_path", str(out)])
    assert out.read_text(encoding="utf-8") == text
    blocks = text.split("\n\n")
    lines = blocks[0].splitlines()
    assert lines[0] == "Target word: cat" and len(lines) == 5
    assert lines[1].split("\t")[0] == "dog" and float(lines[1].split("\t")[1]) == pytest.approx(1.0, abs=1e-6)
    emb = table[: len(vocab)].detach()
    sims = F.cosine_similarity(emb[cat].unsqueeze(0), emb, dim=-1)
    sims[cat] = -2
    expected = [vocab.tokens[i] for i in sims.argsort(descending=True)[:4]]
    assert [line.split("\t")[0] for line in lines[1:]] == expected and "cat" not in expected
    assert blocks[1] == "Target word: not_a_word\nThe target word is not in the vocabulary."


def test_topn_words_dep_ranks_substitutions_by_hidden_state(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    (root / "cand.txt").write_text("dog\nfish\nbird\nmat\nnot_in_vocab\ncat\n[MASK]\n", encoding="utf-8")
    (root / "test.txt").write_text("cat\tthe cat sat on the mat\nzebra\tthe cat sat\nrug\tthe cat sat\n"
                                   "a line without a tab\n", encoding="utf-8")
    text = dep_main(["--load_model_path", str(path), *space(str(root / "vocab.txt")), "--cand_vocab_path",
                     str(root / "cand.txt"), "--test_path", str(root / "test.txt"), "--topn", "3",
                     "--batch_size", "2"])
    ids = [vocab.cls_id] + [vocab.token_to_id(t) for t in "the cat sat on the mat".split()] + [vocab.sep_id]

    def state_at_2(sequence):
        src = torch.tensor([sequence])
        with torch.no_grad():
            return model.encode(src, torch.ones_like(src))[0, 2]

    base = state_at_2(ids)
    sims = {}
    for word in ("dog", "fish", "bird", "mat"):      # not cat itself, not [MASK], not unknown words
        changed = list(ids)
        changed[2] = vocab.token_to_id(word)
        sims[word] = float(F.cosine_similarity(base, state_at_2(changed), dim=0))
    expected = sorted(sims, key=sims.get, reverse=True)[:3]
    lines = text.splitlines()
    assert lines[:2] == ["Original sentence: the cat sat on the mat", "Target word: cat"]
    got = [line.split("\t") for line in lines[2:5]]
    assert [g[0] for g in got] == expected
    for word, sim in got:
        assert float(sim) == pytest.approx(sims[word], abs=1e-5)
    assert lines[5:] == ["Original sentence: the cat sat", "Target word: zebra",
                         "The target word is not in the vocabulary.",
                         "Original sentence: the cat sat", "Target word: rug",
                         "The target word is not in the sentence."]


# ------------------------------------------------------------------------------------- embeddings

def test_extract_embeddings_writes_the_real_vocabulary(tiny, tmp_path):
    root, vocab, config, model, path = tiny
    out = root / "emb.txt"
    embeddings_main(["--load_model_path", str(path), "--vocab_path", str(root / "vocab.txt"),
                     "--word_embedding_path", str(out)])
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"{len(vocab)} 16"
    assert len(lines) == 1 + len(vocab)         # no padding rows (the table has 128)
    table = model.embedding.word.embedding.weight.detach()
    for i, line in enumerate(lines[1:]):
        fields = line.split(" ")
        assert fields[0] == vocab.tokens[i]
        values = np.array([float(x) for x in fields[1:]], dtype=np.float32)
        assert np.array_equal(values, table[i].numpy())     # exact: printed from float32


def test_extract_embeddings_errors(tiny, tmp_path, capsys):
    root, vocab, config, model, path = tiny
    big = root / "big.txt"
    big.write_text("\n".join(SPECIALS + WORDS + [f"x{i}" for i in range(60)]) + "\n", encoding="utf-8")
    assert_one_error(capsys, lambda: embeddings_main(["--load_model_path", str(path), "--vocab_path", str(big),
                                                      "--word_embedding_path", str(root / "e.txt")]),
                     "135 tokens", "128 embedding rows")
    assert_one_error(capsys, lambda: embeddings_main(["--load_model_path", str(root / "none.bin"), "--vocab_path",
                                                      str(big), "--word_embedding_path", str(root / "e.txt")]),
                     "none.bin", "does not exist")
    assert_one_error(capsys, lambda: embeddings_main(["--load_model_path", str(path), "--vocab_path",
                                                      str(root / "vocab.txt"), "--word_embedding_path",
                                                      str(root / "vocab.txt")]), "same file as --vocab_path")
    torch.save({"weights": [1, 2]}, root / "pickle.bin")     # not a dict of tensors: refused, not executed
    assert_one_error(capsys, lambda: embeddings_main(["--load_model_path", str(root / "pickle.bin"), "--vocab_path",
                                                      str(big), "--word_embedding_path", str(root / "e.txt")]),
                     "pickle.bin")
    assert not (root / "e.txt").exists()


# ---------------------------------------------------------------------------------- vocab adapter

@pytest.mark.parametrize("tie_weights", [True, False])
def test_dynamic_vocab_adapter_keeps_the_model_on_shared_tokens(tmp_path, tie_weights):
    old_tokens = SPECIALS + WORDS
    new_tokens = SPECIALS + ["zebra", "lion"] + WORDS[::-1][:40] + ["koala"]   # reordered, some dropped, 3 new
    (tmp_path / "old.txt").write_text("\n".join(old_tokens) + "\n", encoding="utf-8")
    (tmp_path / "new.txt").write_text("\n".join(new_tokens) + "\n", encoding="utf-8")
    old_vocab, new_vocab = Vocab.load(str(tmp_path / "old.txt")), Vocab.load(str(tmp_path / "new.txt"))
    config = tiny_config(len(old_vocab), tie_weights=tie_weights)
    torch.manual_seed(4)
    old = build_model(config).eval()
    with torch.no_grad():
        old.target.mlm.output_bias.normal_()
    save_checkpoint(old, tmp_path / "old.bin", config)
    adapter_main(["--old_model_path", str(tmp_path / "old.bin"), "--old_vocab_path", str(tmp_path / "old.txt"),
                  "--new_vocab_path", str(tmp_path / "new.txt"), "--new_model_path", str(tmp_path / "new.bin")])
    new_config = load_config(str(tmp_path / "new.bin.config.json"))
    assert new_config.vocab_size == len(new_vocab) == 48
    new = Model(new_config).eval()
    load_weights(new, str(tmp_path / "new.bin"))            # strict: every key, every shape
    shared = [t for t in new_tokens if t in old_vocab and t not in SPECIALS]
    sentence = ["[CLS]"] + shared[:12] + ["[SEP]"]
    old_src = torch.tensor([[old_vocab.token_to_id(t) for t in sentence]])
    new_src = torch.tensor([[new_vocab.token_to_id(t) for t in sentence]])
    positions = torch.arange(len(sentence)).unsqueeze(0)
    with torch.no_grad():
        old_hidden = old.encode(old_src, torch.ones_like(old_src))
        new_hidden = new.encode(new_src, torch.ones_like(new_src))
        old_logits = old.target.mlm.logits(old_hidden, positions)
        new_logits = new.target.mlm.logits(new_hidden, positions)
    assert torch.allclose(old_hidden, new_hidden, atol=1e-6)
    columns_old = [old_vocab.token_to_id(t) for t in shared]
    columns_new = [new_vocab.token_to_id(t) for t in shared]
    assert torch.allclose(old_logits[..., columns_old], new_logits[..., columns_new], atol=1e-5)
    state = read_weights(tmp_path / "new.bin")
    table = state["embedding.word.embedding.weight"]
    assert table.shape == (64, 16)
    assert torch.all(table[len(new_vocab):] == 0)           # padding rows
    fresh = table[[new_vocab.token_to_id(t) for t in ("zebra", "lion", "koala")]]
    assert 0.005 < float(fresh.std()) < 0.05                 # N(0, 0.02), as UER-py
    assert ("target.mlm.output_weight" in state) == (not tie_weights)


def test_dynamic_vocab_adapter_refuses_a_mismatched_vocabulary(tiny, tmp_path, capsys):
    root, vocab, config, model, path = tiny
    wrong = root / "wrong.txt"
    wrong.write_text("\n".join(SPECIALS + WORDS[:5]) + "\n", encoding="utf-8")
    assert_one_error(capsys, lambda: adapter_main(["--old_model_path", str(path), "--old_vocab_path", str(wrong),
                                                   "--new_vocab_path", str(wrong), "--new_model_path",
                                                   str(root / "n.bin")]), "vocab_size 75", "10 tokens")
    assert_one_error(capsys, lambda: adapter_main(["--old_model_path", str(path), "--old_vocab_path",
                                                   str(root / "vocab.txt"), "--new_vocab_path", str(wrong),
                                                   "--new_model_path", str(path)]), "same file as --old_model_path")
    assert not (root / "n.bin").exists()


# ------------------------------------------------------------------------------------- diff vocab

def test_diff_vocab(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("[PAD]\nx\ny\nz\ny\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("[PAD]\nz\nw\nv\n", encoding="utf-8")
    out = tmp_path / "diff.txt"
    diff_main(["--vocab_1", str(tmp_path / "a.txt"), "--vocab_2", str(tmp_path / "b.txt"), "--output_path", str(out)])
    printed = capsys.readouterr().out
    assert printed == (f"vocab_1: {tmp_path / 'a.txt'}, size: 4\nvocab_2: {tmp_path / 'b.txt'}, size: 4\n"
                       "vocab_1 - vocab_2 = 2\nvocab_2 - vocab_1 = 2\nvocab_1 & vocab_2 = 2\n")
    assert out.read_text(encoding="utf-8") == "<\tx\n<\ty\n>\tw\n>\tv\n"
    assert_one_error(capsys, lambda: diff_main(["--vocab_1", str(tmp_path / "a.txt"), "--vocab_2",
                                                str(tmp_path / "missing.txt")]), "missing.txt")
    assert_one_error(capsys, lambda: diff_main(["--vocab_1", str(tmp_path / "a.txt"), "--vocab_2",
                                                str(tmp_path / "b.txt"), "--output_path", str(tmp_path / "b.txt")]),
                     "same file as --vocab_2")


def test_cloze_sentence_display():
    """Chinese is glued as UER-py prints it; WordPiece and words stay readable."""
    from uer.tools.cloze import join_tokens
    vocab = Vocab(SPECIALS + ["我", "北", "京", "play", "##ing", "the"])
    assert join_tokens(["[CLS]", "我", "[MASK]", "北", "京", "[SEP]"], vocab) == "[CLS]我[MASK]北京[SEP]"
    assert join_tokens(["[CLS]", "the", "[MASK]", "play", "##ing", "[SEP]"], vocab) == "[CLS] the [MASK] playing [SEP]"
