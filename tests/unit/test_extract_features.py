"""scripts/extract_features.py on a checkpoint converted from a random ``transformers.BertModel``:
the pooled sentence vectors equal the same pooling of transformers' last_hidden_state (masked by the
attention mask) on real Chinese sentences, and padding never changes a sentence's vector."""

import os

import numpy as np
import pytest
import torch

T = pytest.importorskip("transformers")

from uer.cli.extract_features import main as extract_main  # noqa: E402
from uer.convert.cli import convert_hf_to_uer  # noqa: E402
from uer.data.tokenizers import build_tokenizer  # noqa: E402
from uer.tasks.classification import encode_pair  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
SEQ = 48


def read_lines(path, limit, column=None):
    with open(path, encoding="utf-8") as f:
        rows = f.read().splitlines()
    if column is not None:
        rows = [r.split("\t")[column] for r in rows[1:]]
    return [r for r in rows if r.strip()][:limit]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir):
    """A random tiny Chinese BERT (google_zh_vocab, 21128 tokens), converted to uer as scripts/convert.py
    does; the config lands beside the weights (uer.json) where extract_features finds it."""
    root = tmp_path_factory.mktemp("extract")
    torch.manual_seed(0)
    config = T.BertConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=37, max_position_embeddings=64)
    hf = T.BertForMaskedLM(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():    # distinct values everywhere, so a mis-mapped tensor cannot hide
        for name, p in hf.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if "LayerNorm.weight" in name else 0.0))
    hf.eval()
    hf.save_pretrained(root / "hf")
    convert_hf_to_uer(str(root / "hf"), str(root / "uer.bin"))
    vocab = os.path.join(data_dir, "vocab", "google_zh_vocab.txt")
    sentences = read_lines(os.path.join(data_dir, "zh", "chnsenticorp", "test_nolabel.tsv"), 7, column=0)
    return root, hf, vocab, sentences


def run(root, vocab, test_path, out, *flags):
    return extract_main(["--load_model_path", str(root / "uer.bin"), "--vocab_path", vocab,
                         "--test_path", str(test_path), "--prediction_path", str(out),
                         "--seq_length", str(SEQ), "--device", "cpu", *flags])


def hf_pooled(hf, tokenizer, sentences, pooling):
    rows = [encode_pair(tokenizer, s, None, SEQ)["src"] for s in sentences]
    length = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.from_numpy(r)
        mask[i, :len(r)] = 1
    with torch.no_grad():
        hidden = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    keep = mask.unsqueeze(-1).bool()
    if pooling == "first":
        return hidden[:, 0]
    if pooling == "mean":
        return (hidden * keep).sum(1) / keep.sum(1)
    if pooling == "max":
        return hidden.masked_fill(~keep, float("-inf")).max(1).values
    return hidden[torch.arange(len(rows)), mask.sum(1) - 1]


@pytest.mark.parametrize("pooling", ["first", "mean", "max", "last"])
def test_pooled_vectors_match_transformers(setup, tmp_path, pooling):
    root, hf, vocab, sentences = setup
    test = tmp_path / "test.tsv"          # a header TSV (text_a): read as TSV, not as sentences
    test.write_text("text_a\n" + "\n".join(sentences) + "\n", encoding="utf-8")
    ours = run(root, vocab, test, tmp_path / "f.pt", "--pooling", pooling, "--batch_size", "3")
    saved = torch.load(tmp_path / "f.pt")
    assert saved.dtype == torch.float32 and saved.shape == (len(sentences), 32)
    assert torch.equal(saved, ours)
    theirs = hf_pooled(hf, build_tokenizer("bert", vocab), sentences, pooling)
    diff = float((ours - theirs).abs().max())
    print(f"\n{pooling}: max |uer - transformers| = {diff:.2e}")
    assert diff <= TOL
    # The sentences really differ in length, so the masking mattered.
    assert len({len(encode_pair(build_tokenizer("bert", vocab), s, None, SEQ)["src"]) for s in sentences}) > 2


@pytest.mark.parametrize("pooling", ["first", "mean", "max", "last"])
def test_padding_does_not_change_a_vector(setup, tmp_path, pooling):
    root, _, vocab, sentences = setup
    short = min(sentences, key=len)
    longest = max(sentences, key=len)
    (tmp_path / "alone.txt").write_text(short + "\n", encoding="utf-8")
    (tmp_path / "batch.txt").write_text(f"{longest}\n\n{short}\n", encoding="utf-8")   # blank line skipped
    alone = run(root, vocab, tmp_path / "alone.txt", tmp_path / "alone.npy", "--pooling", pooling)
    batch = run(root, vocab, tmp_path / "batch.txt", tmp_path / "batch.npy", "--pooling", pooling)
    assert np.load(tmp_path / "batch.npy").shape == (2, 32)
    assert float((alone[0] - batch[1]).abs().max()) <= TOL
    assert float((batch[0] - batch[1]).abs().max()) > 1e-3     # different sentences, different vectors


def test_pairs_from_tsv(setup, tmp_path):
    root, _, vocab, sentences = setup
    test = tmp_path / "pairs.tsv"
    test.write_text("text_a\ttext_b\n" + "".join(f"{a}\t{b}\n" for a, b in zip(sentences, sentences[1:])))
    out = run(root, vocab, test, tmp_path / "p.pt", "--pooling", "mean")
    assert out.shape == (len(sentences) - 1, 32)


def test_clear_errors(setup, tmp_path, capsys, data_dir):
    root, _, vocab, sentences = setup

    def error(*flags, test_path=None):
        with pytest.raises(SystemExit) as e:
            run(root, flags[0] if flags else vocab, test_path or tmp_path / "s.txt", tmp_path / "o.pt", *flags[1:])
        assert e.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    (tmp_path / "s.txt").write_text(sentences[0] + "\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    assert "does not exist" in error(test_path=tmp_path / "missing.txt")
    assert "holds no sentences" in error(test_path=tmp_path / "empty.txt")
    en_vocab = os.path.join(data_dir, "vocab", "google_uncased_en_vocab.txt")
    assert "vocab_size 21128" in error(en_vocab)
    assert "does not match the model config" in error(vocab, "--layers_num", "3")
    assert "max_seq_length" in error(vocab, "--seq_length", "1000")
    assert not (tmp_path / "o.pt").exists()


def test_electra_checkpoint_gives_its_discriminator(tiny_corpus, tmp_path):
    """A checkpoint of the ELECTRA composite pretrainer (generator + discriminator, config beside it
    as pretrain.py writes it): the vectors are the discriminator's."""
    from uer.config import config_from_dict, save_config
    from uer.layers.pooling import pool
    from uer.models import Model
    from uer.models.electra import ElectraPretrainer
    from uer.models.weights import load_weights, save_weights

    vocab = str(tiny_corpus / "vocab.txt")
    tokenizer = build_tokenizer("space", vocab)
    config = config_from_dict(dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
                                   max_seq_length=32, target=["mlm", "rtd"], pretrainer="electra"))
    config.vocab_size = len(tokenizer.vocab)
    torch.manual_seed(0)
    electra = ElectraPretrainer(config)
    save_weights(electra, str(tmp_path / "electra.bin"))
    save_config(config, str(tmp_path / "electra.bin.config.json"))
    lines = [line.strip() for line in open(tiny_corpus / "corpus.txt", encoding="utf-8") if line.strip()][:5]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ours = extract_main(["--load_model_path", str(tmp_path / "electra.bin"), "--tokenizer", "space",
                         "--vocab_path", vocab, "--test_path", str(tmp_path / "s.txt"),
                         "--prediction_path", str(tmp_path / "f.pt"), "--pooling", "mean", "--device", "cpu"])
    config.pretrainer = ""
    disc = Model(config, with_target=False)
    load_weights(disc, electra.discriminator_backbone_state(), ignore_unexpected=("target.",))
    disc.eval()
    for i, line in enumerate(lines):
        src = torch.from_numpy(encode_pair(tokenizer, line, None, 32)["src"]).unsqueeze(0)
        seg = torch.ones_like(src)
        with torch.no_grad():
            expected = pool(disc.encode(src, seg), seg, "mean")[0]
        assert float((ours[i] - expected).abs().max()) <= TOL


def test_converted_gpt2_with_bpe_last_token(tmp_path, data_dir):
    """A GPT-2 converted with its vocab.json + merges.txt: ``--tokenizer bpe`` and ``--pooling last``
    give transformers' hidden state at each sentence's last real token."""
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("regex")
    with open(os.path.join(data_dir, "en", "sst2", "dev.tsv"), encoding="utf-8") as f:
        lines = [row.split("\t")[1] for row in f.read().splitlines()[1:300]]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=500, special_tokens=["<|endoftext|>"], show_progress=False)
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    bpe.save_model(str(hf_dir))
    torch.manual_seed(0)
    hf = T.GPT2Model(T.GPT2Config(vocab_size=bpe.get_vocab_size(), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)).eval()
    hf.save_pretrained(hf_dir)
    vocab, merges = str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")
    convert_hf_to_uer(str(hf_dir), str(tmp_path / "gpt2.bin"), output_vocab_path=vocab, output_merges_path=merges)
    sentences = lines[:6]
    (tmp_path / "s.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    ours = extract_main(["--load_model_path", str(tmp_path / "gpt2.bin"), "--tokenizer", "bpe", "--vocab_path", vocab,
                         "--merges_path", merges, "--test_path", str(tmp_path / "s.txt"), "--prediction_path",
                         str(tmp_path / "f.pt"), "--pooling", "last", "--seq_length", "64", "--device", "cpu"])
    tokenizer = build_tokenizer("bpe", vocab, merges_path=merges)
    for i, s in enumerate(sentences):
        ids = torch.from_numpy(encode_pair(tokenizer, s, None, 64)["src"]).unsqueeze(0)
        with torch.no_grad():
            expected = hf(input_ids=ids).last_hidden_state[0, -1]
        assert float((ours[i] - expected).abs().max()) <= TOL
