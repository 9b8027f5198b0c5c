"""scripts/generate_lm.py and scripts/generate_seq2seq.py on tiny random models: one output line per
input line (prompt + continuation; newlines written as \\n), --top_k 1 deterministic and equal with
and without the cache, beam search runs, and bad input is one `error:` line."""

import json

import pytest
import torch

from uer.cli.generate_lm import main as generate_lm_main
from uer.cli.generate_seq2seq import main as generate_seq2seq_main
from uer.config import config_from_dict
from uer.models import build_model
from uer.models.weights import save_weights
from tests.unit.test_generation import randomized

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "and", "then", "slept", "here",
         "there", "big", "small", "red", "blue", "green"] + [f"w{i}" for i in range(20)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

GPT2 = dict(embedding=["word", "pos"], remove_embedding_layernorm=True, emb_size=32, hidden_size=32,
            feedforward_size=64, heads_num=4, layers_num=2, max_seq_length=48, hidden_act="gelu_fast",
            mask="causal", layernorm_positioning="pre", layernorm_eps=1e-5, target=["lm"], tie_weights=True,
            dropout=0.0, data_processor="lm")


def write_model(tmp_path, config: dict, vocab_size: int, name: str, **sizes):
    model = randomized(build_model(config_from_dict({**config, "vocab_size": vocab_size, **sizes}, "<test>")))
    if not config.get("decoder"):
        with torch.no_grad():   # a zero [SEP] row (tied output): the end token rarely wins, lines continue
            model.embedding.word.embedding.weight[SPECIALS.index("[SEP]")] = 0
    save_weights(model, tmp_path / f"{name}.bin")
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    return model, str(tmp_path / f"{name}.bin"), str(tmp_path / f"{name}.json")


@pytest.fixture
def lm_files(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    _, model, config = write_model(tmp_path, GPT2, len(SPECIALS + WORDS), "gpt2")
    prompts = ["the cat sat on", "", "a big red dog ran", "then"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    return tmp_path, model, config, prompts


def lm_flags(tmp_path, model, config, out="out.txt", *extra):
    return ["--load_model_path", model, "--config_path", config, "--vocab_path", str(tmp_path / "vocab.txt"),
            "--test_path", str(tmp_path / "prompts.txt"), "--prediction_path", str(tmp_path / out),
            "--seq_length", "24", *extra]


def test_generate_lm_writes_one_line_per_prompt(lm_files):
    tmp_path, model, config, prompts = lm_files
    out = generate_lm_main(lm_flags(tmp_path, model, config, "greedy.txt", "--top_k", "1", "--batch_size", "3"))
    lines = (tmp_path / "greedy.txt").read_text().split("\n")
    assert lines[-1] == "" and lines[:-1] == out and len(out) == len(prompts)
    for prompt, line in zip(prompts, out):
        assert line.startswith(prompt) and len(line) > len(prompt)
    # greedy: deterministic, the same with another seed, without the cache and one prompt per batch
    again = generate_lm_main(lm_flags(tmp_path, model, config, "again.txt", "--top_k", "1", "--seed", "3",
                                      "--no_cache", "--batch_size", "1"))
    assert again == out
    short = generate_lm_main(lm_flags(tmp_path, model, config, "short.txt", "--top_k", "1", "--max_new_tokens", "2"))
    assert all(len(s.split()) <= len(p.split()) + 2 for s, p in zip(short, prompts))
    beam = generate_lm_main(lm_flags(tmp_path, model, config, "beam.txt", "--beam_width", "3",
                                     "--max_new_tokens", "5", "--no_repeat_ngram_size", "2"))
    assert len(beam) == len(prompts)
    sampled = generate_lm_main(lm_flags(tmp_path, model, config, "sampled.txt", "--top_k", "0", "--top_p", "0.9",
                                        "--temperature", "1.5", "--repetition_penalty", "1.3"))
    assert len(sampled) == len(prompts) and sampled != out


def run_error(main, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def test_generate_lm_bad_input_is_one_error_line(lm_files, capsys):
    tmp_path, model, config, _ = lm_files
    (tmp_path / "empty.txt").write_text("\n\n")
    flags = lm_flags(tmp_path, model, config)
    i = flags.index("--test_path") + 1
    assert "holds no prompts" in run_error(generate_lm_main, flags[:i] + [str(tmp_path / "empty.txt")] + flags[i + 1:],
                                           capsys)
    assert "does not exist" in run_error(generate_lm_main, flags[:i] + [str(tmp_path / "nope.txt")] + flags[i + 1:],
                                         capsys)
    j = flags.index("--load_model_path") + 1
    message = run_error(generate_lm_main, flags[:j] + [str(tmp_path / "missing.bin")] + flags[j + 1:], capsys)
    assert "--load_model_path" in message and "does not exist" in message
    message = run_error(generate_lm_main, flags + ["--top_p", "2"], capsys)
    assert "--top_p" in message
    message = run_error(generate_lm_main, flags[:-1] + ["200"], capsys)
    assert "--seq_length 200 exceeds" in message
    (tmp_path / "long.txt").write_text(" ".join(["cat"] * 30) + "\n")
    message = run_error(generate_lm_main, flags[:i] + [str(tmp_path / "long.txt")] + flags[i + 1:], capsys)
    assert "line 1" in message and "--seq_length" in message
    assert not (tmp_path / "out.txt").exists()


def test_generate_lm_writes_newlines_as_backslash_n(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("regex")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["hello world\nnew line here\n"] * 20, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(tmp_path))
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    config = {**GPT2, "tie_weights": False, "has_lmtarget_bias": True}
    model = randomized(build_model(config_from_dict({**config, "vocab_size": len(vocab)}, "<test>")))
    with torch.no_grad():
        model.target.lm.output_bias[vocab["Ċ"]] = 1e4          # the byte-level token of "\n" always wins
    save_weights(model, tmp_path / "m.bin")
    (tmp_path / "m.json").write_text(json.dumps(config))
    (tmp_path / "p.txt").write_text("hello\nworld\n")
    out = generate_lm_main(["--load_model_path", str(tmp_path / "m.bin"), "--config_path", str(tmp_path / "m.json"),
                            "--tokenizer", "bpe", "--vocab_path", str(tmp_path / "vocab.json"),
                            "--merges_path", str(tmp_path / "merges.txt"), "--test_path", str(tmp_path / "p.txt"),
                            "--prediction_path", str(tmp_path / "o.txt"), "--top_k", "1", "--max_new_tokens", "3"])
    assert out == ["hello\\n\\n\\n", "world\\n\\n\\n"]
    assert (tmp_path / "o.txt").read_text() == "hello\\n\\n\\n\nworld\\n\\n\\n\n"


SEQ2SEQ = dict(embedding=["word", "sinusoidalpos"], tgt_embedding=["word", "sinusoidalpos"], decoder="transformer",
               target=["lm"], emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
               decoder_layers_num=2, dropout=0.0, max_seq_length=32, layernorm_positioning="post",
               scale_embedding=True, hidden_act="relu", tie_weights=True, layernorm_eps=1e-12)


def test_generate_seq2seq_with_a_separate_target_vocabulary(tmp_path, capsys):
    tgt_words = [f"z{i}" for i in range(30)]
    (tmp_path / "src_vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    (tmp_path / "tgt_vocab.txt").write_text("\n".join(SPECIALS + tgt_words) + "\n")
    _, model, config = write_model(tmp_path, SEQ2SEQ, len(SPECIALS + WORDS), "mt",
                                   tgt_vocab_size=len(SPECIALS + tgt_words))
    sources = ["the cat sat on a mat", "dog", "", "big red green blue"]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    flags = ["--load_model_path", model, "--config_path", config, "--vocab_path", str(tmp_path / "src_vocab.txt"),
             "--tgt_vocab_path", str(tmp_path / "tgt_vocab.txt"), "--test_path", str(tmp_path / "src.txt"),
             "--seq_length", "16", "--tgt_seq_length", "12"]
    out = generate_seq2seq_main(flags + ["--prediction_path", str(tmp_path / "a.txt")])
    assert len(out) == len(sources) and (tmp_path / "a.txt").read_text().count("\n") == len(sources)
    assert all(set(line.split()) <= set(tgt_words + SPECIALS) for line in out)   # the target vocabulary's tokens
    assert any(set(line.split()) & set(tgt_words) for line in out)
    assert all(len(line.split()) <= 11 for line in out)
    assert generate_seq2seq_main(flags + ["--prediction_path", str(tmp_path / "b.txt"), "--no_cache",
                                          "--batch_size", "1"]) == out
    beam = generate_seq2seq_main(flags + ["--prediction_path", str(tmp_path / "c.txt"), "--beam_width", "3"])
    assert len(beam) == len(sources)
    message = run_error(generate_seq2seq_main, flags + ["--prediction_path", str(tmp_path / "d.txt"),
                                                        "--tgt_start_token", "<s>"], capsys)
    assert "--tgt_start_token" in message
    lm_flags_ = ["--load_model_path", model, "--config_path", config, "--vocab_path", str(tmp_path / "src_vocab.txt"),
                 "--test_path", str(tmp_path / "src.txt"), "--prediction_path", str(tmp_path / "e.txt")]
    assert "generate_seq2seq.py" in run_error(generate_lm_main, lm_flags_, capsys)


def test_generate_lm_top_k_1_equals_transformers_greedy_generate_on_a_converted_gpt2(tmp_path):
    """HF GPT-2 (random, tiny) -> scripts/convert.py -> scripts/generate_lm.py --top_k 1: the same
    continuation as transformers' greedy generate from the same ids (<|endoftext|> + the prompt)."""
    T = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("regex")
    from uer.convert.cli import main as convert_main
    from uer.data.tokenizers import build_tokenizer
    T.logging.set_verbosity_error()
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the cat sat on the mat and the dog ran far away\n"] * 20, vocab_size=300,
                            min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(tmp_path))
    tok = build_tokenizer("bpe", str(tmp_path / "vocab.json"), merges_path=str(tmp_path / "merges.txt"))
    eos = tok.vocab.cls_id
    hf = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=len(tok.vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                        bos_token_id=eos, eos_token_id=eos))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4 + (1.0 if ".ln_" in name and name.endswith("weight") else 0))
    hf.eval().save_pretrained(tmp_path / "hf")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "hf"),
                  "--output_model_path", str(tmp_path / "gpt2.bin"), "--output_config_path", str(tmp_path / "gpt2.json")])
    prompts = ["the cat sat", "dog ran far away", "mat"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    n = 12
    out = generate_lm_main(["--load_model_path", str(tmp_path / "gpt2.bin"), "--config_path", str(tmp_path / "gpt2.json"),
                            "--tokenizer", "bpe", "--vocab_path", str(tmp_path / "vocab.json"),
                            "--merges_path", str(tmp_path / "merges.txt"), "--test_path", str(tmp_path / "p.txt"),
                            "--prediction_path", str(tmp_path / "o.txt"), "--top_k", "1", "--max_new_tokens", str(n),
                            "--batch_size", "3"])
    for prompt, line in zip(prompts, out):
        ids = torch.tensor([[eos] + tok.encode(prompt)])
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             eos_token_id=eos, pad_token_id=eos)[0, ids.size(1):].tolist()
        if eos in theirs:
            theirs = theirs[:theirs.index(eos)]
        assert line == prompt + tok.decode(theirs).replace("\n", "\\n")
    assert sum(len(line) - len(prompt) for prompt, line in zip(prompts, out)) > 10
