"""build_vocab end to end: SentencePiece model + WordPiece vocab.txt that BertTokenizer can use,
deterministic output, and failures that leave no files behind."""

import os
import random
import subprocess
import sys
from typing import List

import pytest

from uer.cli.build_vocab import main, wordpiece_tokens_from_pieces
from uer.data.tokenizers import BertTokenizer, SentencePieceTokenizer
from uer.data.vocab import Vocab

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def real_data_dir() -> str:
    path = os.environ.get("UER_DATA_DIR")
    if not path:
        pytest.skip("UER_DATA_DIR not set (point it at shared/data to run tests on real data)")
    return path


def english_sentences(n: int, seed: int = 0) -> List[str]:
    """Varied English-like sentences: capitalised starts, names, numbers, punctuation, made-up
    words (so the pieces must really split words), and a few accented loanwords."""
    rng = random.Random(seed)
    subjects = ["the farmer", "a young teacher", "my neighbour", "the committee", "our old dog",
                "every student", "the government", "a tired engineer", "his sister", "the orchestra"]
    verbs = ["announced", "repaired", "painted", "discovered", "ignored", "celebrated", "questioned",
             "delivered", "borrowed", "photographed", "reorganised", "abandoned"]
    objects = ["the bridge", "a strange letter", "their garden", "the annual report", "an empty bottle",
               "several paintings", "the village church", "a broken bicycle", "the final exam"]
    adverbs = ["quickly", "reluctantly", "yesterday", "at dawn", "without warning", "twice", "again"]
    places = ["in London", "near the river", "at the station", "in Paris", "on the mountain",
              "behind the café", "inside the museum", "at the naïve art fair"]
    names = ["Alice", "Bob", "Chen", "Dmitri", "Élodie", "Fatima", "Gustav", "Hiroshi"]
    syllables = ["ka", "lo", "mer", "tri", "van", "sel", "dor", "pha", "qui", "zen", "bru", "ost"]
    out = []
    for _ in range(n):
        made_up = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        parts = [rng.choice(subjects + names), rng.choice(verbs), rng.choice(objects)]
        if rng.random() < 0.6:
            parts.append(rng.choice(adverbs))
        if rng.random() < 0.5:
            parts.append(rng.choice(places))
        if rng.random() < 0.4:
            parts.append(f"with {rng.randint(2, 1999)} {made_up}s")
        sentence = " ".join(parts)
        sentence = sentence[0].upper() + sentence[1:]
        end = rng.choice([".", ".", ".", "!", "?"])
        if rng.random() < 0.3:
            sentence += f", said {rng.choice(names)}"
        if rng.random() < 0.15:
            sentence = f'"{sentence}{end}" ({made_up}-{rng.randint(1, 99)})'
            end = ""
        out.append(sentence + end)
    return out


@pytest.fixture(scope="module")
def english_corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "english.txt"
    lines = english_sentences(3000)
    # Blank lines and odd whitespace are part of real corpora; they must not break anything.
    lines[10:10] = ["", "   ", "\tTabbed\tline\twith\u00a0nbsp."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def built(english_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    vocab_path, spm_path = str(out / "vocab.txt"), str(out / "spm.model")
    result = main(["--corpus_path", english_corpus, "--vocab_path", vocab_path,
                   "--spm_model_path", spm_path, "--vocab_size", "800"])
    return {"dir": out, "vocab": vocab_path, "spm": spm_path, "result": result}


def unk_rate(tokenizer, lines: List[str]) -> float:
    total = unk = 0
    for line in lines:
        tokens = tokenizer.tokenize(line)
        total += len(tokens)
        unk += tokens.count("[UNK]")
    return unk / max(total, 1)


# ---------------------------------------------------------------------- derivation rule

def test_wordpiece_tokens_from_pieces():
    pieces = SPECIALS + ["\u2581the", "s", "\u2581", "\u2581cat", "ing", "\u2581the", "s", "a\u2581b"]
    tokens = wordpiece_tokens_from_pieces(pieces)
    assert tokens[:5] == SPECIALS
    words = ["the", "##s", "cat", "##ing"]
    assert tokens[5:9] == words  # "▁" dropped, duplicates dropped, boundary-spanning piece dropped
    chars = tokens[9:]
    for ch in "thescaing":
        assert ch in tokens and "##" + ch in tokens
    assert len(tokens) == len(set(tokens))
    assert "\u2581" not in "".join(chars)


# ---------------------------------------------------------------------- end to end

def test_outputs_and_summary(built, capsys):
    vocab = Vocab.load(built["vocab"])
    assert vocab.tokens[:5] == SPECIALS
    assert vocab.special_ids == [0, 1, 2, 3, 4]
    vocab.require(purpose="MLM")
    assert len(vocab.tokens) == len(set(vocab.tokens))
    assert built["result"]["spm_pieces"] == 800 and built["result"]["vocab_size"] == len(vocab)
    assert sorted(os.listdir(built["dir"])) == ["spm.model", "vocab.txt"]  # no temp files left

    spm_tok = SentencePieceTokenizer(built["spm"])
    assert spm_tok.vocab.tokens[:5] == SPECIALS  # [PAD]=0, [UNK]=1, then the user-defined symbols
    assert spm_tok.vocab.special_ids == [0, 1, 2, 3, 4]


def test_vocab_is_usable_by_bert_tokenizer(built, english_corpus):
    tok = BertTokenizer(Vocab.load(built["vocab"]), do_lower_case=True)
    with open(english_corpus, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f][:500]
    rate = unk_rate(tok, lines)
    assert rate < 0.01, f"[UNK] rate {rate:.3%} on the training corpus"
    # Unseen words made of seen characters still tokenize without [UNK].
    assert "[UNK]" not in tok.tokenize("Unseen combinations, trivandor celebrating mountains!")
    # Whole frequent words exist as single tokens.
    assert tok.tokenize("the") == ["the"]


def test_spm_model_round_trip(built):
    tok = SentencePieceTokenizer(built["spm"], do_lower_case=True)
    text = "the young teacher repaired the bridge near the river"
    assert tok.sp.decode(tok.encode(text)) == text
    assert tok.encode("a [MASK] b").count(tok.vocab.mask_id) == 1


def test_deterministic(built, english_corpus, tmp_path):
    main(["--corpus_path", english_corpus, "--vocab_path", str(tmp_path / "v.txt"),
          "--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "800"])
    assert open(built["vocab"], "rb").read() == (tmp_path / "v.txt").read_bytes()
    assert open(built["spm"], "rb").read() == (tmp_path / "m.model").read_bytes()


def test_no_lower_case_and_bpe(english_corpus, tmp_path):
    main(["--corpus_path", english_corpus, "--vocab_path", str(tmp_path / "v.txt"),
          "--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "600",
          "--model_type", "bpe", "--no_lower_case", "--seed", "3"])
    vocab = Vocab.load(str(tmp_path / "v.txt"))
    assert any(t[:1].isupper() for t in vocab.tokens if t not in SPECIALS)  # case kept
    tok = BertTokenizer(vocab, do_lower_case=False)
    rate = unk_rate(tok, english_sentences(300, seed=1))
    assert rate < 0.01


def test_script_shim(english_corpus, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "build_vocab.py"),
                           "--corpus_path", english_corpus, "--vocab_path", str(tmp_path / "v.txt"),
                           "--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "300",
                           "--input_sentence_size", "1000"],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "300 SentencePiece pieces" in proc.stdout and "v.txt" in proc.stdout
    assert (tmp_path / "v.txt").exists() and (tmp_path / "m.model").exists()


# ---------------------------------------------------------------------- failures leave nothing

def run_failing(argv: List[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_missing_corpus(tmp_path, capsys):
    out = tmp_path / "out"
    err = run_failing(["--corpus_path", str(tmp_path / "nope.txt"), "--vocab_path", str(out / "v.txt"),
                       "--spm_model_path", str(out / "m.model")], capsys)
    assert "nope.txt" in err and "does not exist" in err
    assert not out.exists()


def test_empty_corpus(tmp_path, capsys):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n  \n\t\n")
    out = tmp_path / "out"
    err = run_failing(["--corpus_path", str(corpus), "--vocab_path", str(out / "v.txt"),
                       "--spm_model_path", str(out / "m.model")], capsys)
    assert "empty.txt" in err and "no text" in err
    assert not out.exists()


def test_vocab_size_too_large(english_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    err = run_failing(["--corpus_path", english_corpus, "--vocab_path", str(out / "v.txt"),
                       "--spm_model_path", str(out / "m.model"), "--vocab_size", "100000"], capsys)
    assert "--vocab_size 100000" in err and "lower --vocab_size" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_failure_keeps_existing_outputs(english_corpus, tmp_path, capsys):
    vocab_path, spm_path = tmp_path / "v.txt", tmp_path / "m.model"
    vocab_path.write_text("old vocab\n")
    spm_path.write_bytes(b"old model")
    run_failing(["--corpus_path", english_corpus, "--vocab_path", str(vocab_path),
                 "--spm_model_path", str(spm_path), "--vocab_size", "100000"], capsys)
    assert vocab_path.read_text() == "old vocab\n" and spm_path.read_bytes() == b"old model"
    assert sorted(os.listdir(tmp_path)) == ["m.model", "v.txt"]


def test_bad_flags(english_corpus, tmp_path, capsys):
    common = ["--corpus_path", english_corpus, "--vocab_path", str(tmp_path / "v.txt")]
    run_failing(common + ["--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "3"], capsys)
    run_failing(common + ["--spm_model_path", str(tmp_path / "v.txt")], capsys)
    run_failing(common + ["--spm_model_path", str(tmp_path / "m.model"), "--model_type", "word"], capsys)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- real corpora

def test_real_english_corpus(tmp_path):
    data = real_data_dir()
    corpus = os.path.join(data, "en", "wikitext-2", "valid.txt")
    main(["--corpus_path", corpus, "--vocab_path", str(tmp_path / "v.txt"),
          "--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "2000"])
    tok = BertTokenizer(Vocab.load(str(tmp_path / "v.txt")), do_lower_case=True)
    with open(corpus, encoding="utf-8") as f:
        train_sample = [line.rstrip("\n") for line in f][:300]
    with open(os.path.join(data, "en", "wikitext-2", "test.txt"), encoding="utf-8") as f:
        heldout_sample = [line.rstrip("\n") for line in f][:300]
    assert unk_rate(tok, train_sample) < 0.01
    assert unk_rate(tok, heldout_sample) < 0.01


def test_real_chinese_corpus(tmp_path):
    data = real_data_dir()
    with open(os.path.join(data, "zh", "corpora", "CLUECorpusSmall_bert_sampled.txt"), encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f][:4000]
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(["--corpus_path", str(corpus), "--vocab_path", str(tmp_path / "v.txt"),
          "--spm_model_path", str(tmp_path / "m.model"), "--vocab_size", "5000"])
    tok = BertTokenizer(Vocab.load(str(tmp_path / "v.txt")), do_lower_case=True)
    # Full-width punctuation survives (no NFKC folding), so it is in the vocab as itself.
    assert tok.tokenize("你好，世界。").count("[UNK]") == 0
    assert unk_rate(tok, lines[:1000]) < 0.01
