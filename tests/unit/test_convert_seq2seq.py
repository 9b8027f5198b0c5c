"""Hugging Face <-> uer conversion of the encoder-decoder families (T5, T5 v1.1, BART, PEGASUS, Marian), each
proven on a random tiny ``transformers`` model in fp32: the converted uer model gives the same logits (1e-5)
for the same encoder and decoder inputs, export gives back the state dict transformers loads with no
missing or unexpected keys, and greedy and beam search produce exactly transformers' ``generate`` tokens."""

import json
import os

import pytest
import torch

T = pytest.importorskip("transformers")

from uer.config import load_config  # noqa: E402
from uer.convert import hf_to_uer, uer_to_hf  # noqa: E402
from uer.convert.hf_files import write_dir  # noqa: E402
from uer.embeddings.position import sinusoid_table  # noqa: E402
from uer.errors import CheckpointError, ConfigError  # noqa: E402
from uer.generation import GenerationSettings, generate_seq2seq  # noqa: E402
from uer.models import build_model  # noqa: E402
from uer.models.weights import load_weights  # noqa: E402

T.logging.set_verbosity_error()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VOCAB = 96          # not a multiple of 64: the padded rows are exercised
BART_SIZES = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                  decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=40, max_position_embeddings=40,
                  dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
T5_SIZES = dict(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=48, num_layers=2, num_decoder_layers=3, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)

# family -> (transformers class, config class, config kwargs, pad, eos, decoder start)
FAMILIES = {
    "t5": ("T5ForConditionalGeneration", "T5Config", dict(T5_SIZES, feed_forward_proj="relu"), 0, 1, 0),
    "t5_v1_1": ("T5ForConditionalGeneration", "T5Config",
                dict(T5_SIZES, feed_forward_proj="gated-gelu", tie_word_embeddings=False), 0, 1, 0),
    "bart": ("BartForConditionalGeneration", "BartConfig",
             dict(BART_SIZES, activation_function="gelu", scale_embedding=True, pad_token_id=1, bos_token_id=0,
                  eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None), 1, 2, 2),
    "pegasus": ("PegasusForConditionalGeneration", "PegasusConfig",
                dict(BART_SIZES, activation_function="relu", scale_embedding=True, pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0, forced_eos_token_id=None), 0, 1, 0),
    "marian": ("MarianMTModel", "MarianConfig",
               dict(BART_SIZES, activation_function="swish", scale_embedding=True, pad_token_id=VOCAB - 1,
                    eos_token_id=0, decoder_start_token_id=VOCAB - 1, decoder_vocab_size=VOCAB,
                    forced_eos_token_id=None), VOCAB - 1, 0, VOCAB - 1),
}
ARCHITECTURE = {"t5": "t5", "t5_v1_1": "t5", "bart": "bart", "pegasus": "pegasus", "marian": "marian"}


def tiny_hf(family, seed=0):
    """A random transformers model whose weights are far from their init (norms, biases and an untied head
    included), so that a wrong map shows in the logits; its special-token logits raised a little so that
    generation sometimes ends early."""
    cls, cfg_cls, kwargs, _, eos, _ = FAMILIES[family]
    torch.manual_seed(seed)
    model = getattr(T, cls)(getattr(T, cfg_cls)(**kwargs)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name and family != "bart":
                continue                                   # fixed sinusoids
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.copy_(0.5 * torch.randn_like(model.final_logits_bias))
            # Lift the end token to within reach of the best first tokens, so that some rows end early.
            src, mask, tgt = inputs(family, seed=2)
            first = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt[:, :1]).logits[:, 0]
            model.final_logits_bias[0, eos] += (first.max(-1).values - first[:, eos]).median()
        if family == "t5_v1_1":
            model.lm_head.weight.copy_(0.3 * torch.randn_like(model.lm_head.weight))
    return model


def saved(model, path):
    model.save_pretrained(str(path))
    return str(path)


def inputs(family, seed=1):
    _, _, _, pad, eos, start = FAMILIES[family]
    g = torch.Generator().manual_seed(seed)
    low = 3 if family != "marian" else 1
    src = torch.randint(low, VOCAB - 1, (5, 7), generator=g)
    mask = torch.ones_like(src)
    mask[2, 4:] = 0
    mask[4, 2:] = 0
    src = src.masked_fill(mask == 0, pad)
    tgt = torch.randint(low, VOCAB - 1, (5, 5), generator=g)
    tgt[:, 0] = start
    return src, mask, tgt


def uer_model(converted):
    model = build_model(converted.config).eval()
    load_weights(model, converted.state)
    return model


@pytest.fixture(scope="module", params=list(FAMILIES))
def pair(request, tmp_path_factory):
    family = request.param
    hf = tiny_hf(family)
    directory = saved(hf, tmp_path_factory.mktemp(family) / "hf")
    converted = hf_to_uer(directory)
    return family, hf, directory, converted, uer_model(converted)


def logits_diff(family, hf, model):
    src, mask, tgt = inputs(family)
    with torch.no_grad():
        expected = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
        logits = model.logits(tgt, model.encode(src, mask), mask)
    assert logits.shape == expected.shape
    return (logits - expected).abs().max().item(), expected.abs().max().item()


def test_logits_match_transformers(pair):
    """T5 v1.1's "gated-gelu" imports as our gelu_new, the explicit tanh formula transformers computes
    (torch's fused kernel rounds differently: 1.5e-5 on these deliberately large random weights)."""
    family, hf, _, converted, ours = pair
    assert converted.variant.hf_class == FAMILIES[family][0]
    # a converted T5 config pretrains from scratch with T5's own initialisation
    assert converted.config.init == ("t5" if family.startswith("t5") else "normal")
    diff, scale = logits_diff(family, hf, ours)
    print(f"{family}: logits max |diff| {diff:.2e} (largest logit {scale:.1f})")
    assert diff < 1e-5


def test_round_trip_is_exact(pair, tmp_path):
    family, hf, _, converted, _ = pair
    back = uer_to_hf(converted.state, converted.config, ARCHITECTURE[family])
    out = str(tmp_path / "back")
    write_dir(out, back.hf_config, back.state)
    cls = getattr(T, FAMILIES[family][0])
    reloaded, info = cls.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    original, again = hf.state_dict(), reloaded.state_dict()
    assert set(original) == set(again)
    for name, tensor in original.items():
        if family == "bart" and name.endswith("embed_positions.weight"):
            # Rows 0-1 are never read (positions start at row 2): dropped on import, zeros on export.
            assert torch.equal(again[name][2:], tensor[2:]) and not again[name][:2].any(), name
            continue
        assert torch.equal(again[name], tensor), name
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        written = json.load(f)
    for key in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
        assert written[key] == getattr(hf.config, key), key


def test_bart_unused_position_rows_are_noted(tmp_path):
    converted = hf_to_uer(saved(tiny_hf("bart"), tmp_path / "hf"))
    assert any("position rows 0..1" in n for n in converted.notes)


def hf_generate(hf, src, mask, family, **settings):
    _, _, _, pad, eos, start = FAMILIES[family]
    # transformers 5.24 sizes T5's decoder cache by num_layers, so a T5 whose decoder is deeper than its
    # encoder fails in generate() with the cache; without it the same tokens come out, more slowly.
    out = hf.generate(input_ids=src, attention_mask=mask, do_sample=False, min_length=0,
                      eos_token_id=eos, pad_token_id=pad, decoder_start_token_id=start,
                      forced_eos_token_id=None, forced_bos_token_id=None, no_repeat_ngram_size=0,
                      repetition_penalty=1.0, use_cache=not family.startswith("t5"), **settings)
    rows = []
    for row in out[:, 1:].tolist():                     # drop the decoder start token
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.mark.parametrize("beams,length_penalty", [(1, 1.0), (3, 1.0), (3, 0.6), (3, 2.0)])
def test_generation_matches_transformers(pair, beams, length_penalty):
    """Greedy and beam search: the same tokens as transformers' generate with the same settings.  Beam
    search uses ``early_stopping="never"``: uer stops a row only when no live beam can still beat the
    finished ones (the exact bound); transformers' default (False) stops on a heuristic that assumes no
    beam gets longer, which with length_penalty > 0 can end the search before the best hypothesis is
    found."""
    family, hf, _, converted, ours = pair
    _, _, _, pad, eos, start = FAMILIES[family]
    src, mask, _ = inputs(family, seed=2)
    steps = 12
    expected = hf_generate(hf, src, mask, family, max_new_tokens=steps, num_beams=beams,
                           length_penalty=length_penalty, early_stopping="never")
    sources = [row[: int(m.sum())] for row, m in zip(src.tolist(), mask)]
    settings = GenerationSettings(max_new_tokens=steps, top_k=1, beam_width=beams, length_penalty=length_penalty,
                                  eos_id=eos, pad_id=pad)
    assert converted.config.decoder_start_token_id == start
    got = generate_seq2seq(ours, sources, settings, converted.config.decoder_start_token_id)
    print(family, beams, length_penalty, [len(r) for r in got])
    assert got == expected
    if beams == 1:
        assert any(len(r) < steps for r in got) or family.startswith("t5")   # an end token was generated


def test_pegasus_stored_positions_are_our_table(pair):
    family, hf, _, _, _ = pair
    if family not in ("pegasus", "marian"):
        pytest.skip("sinusoid positions only")
    table = hf.model.encoder.embed_positions.weight
    assert torch.equal(table, sinusoid_table(table.size(0), table.size(1), "halves"))


def test_trained_sinusoids_are_refused(tmp_path):
    hf = tiny_hf("pegasus")
    with torch.no_grad():
        hf.model.decoder.embed_positions.weight[3, 0] += 0.1
    with pytest.raises(CheckpointError, match="decoder.embed_positions is not the fixed sinusoid table"):
        hf_to_uer(saved(hf, tmp_path / "hf"))


def test_export_refuses_what_the_family_cannot_hold(pair):
    family, _, _, converted, _ = pair
    other = {"t5": "bart", "t5_v1_1": "bart", "bart": "t5", "pegasus": "marian", "marian": "pegasus"}[family]
    with pytest.raises(ConfigError, match="choose another --architecture"):
        uer_to_hf(converted.state, converted.config, other)


def test_marian_with_two_vocabularies_is_refused(tmp_path):
    cfg = dict(FAMILIES["marian"][2], share_encoder_decoder_embeddings=False)
    model = T.MarianMTModel(T.MarianConfig(**cfg))
    with pytest.raises(ConfigError, match="separate source and target vocabularies"):
        hf_to_uer(saved(model, tmp_path / "hf"))


def test_uer_model_without_lm_bias_exports_zero_final_logits_bias(pair, tmp_path):
    """A uer MT model trained without an lm bias (models/transformer/base.json) still exports: the bias
    transformers always has is written as zeros and the logits stay ours."""
    family, _, _, converted, ours = pair
    if family not in ("bart", "marian", "pegasus"):
        pytest.skip("families with final_logits_bias")
    import dataclasses
    config = dataclasses.replace(converted.config, has_lmtarget_bias=False)
    state = {k: v for k, v in converted.state.items() if k != "target.lm.output_bias"}
    back = uer_to_hf(state, config, family)
    assert not back.state["final_logits_bias"].any()
    out = str(tmp_path / "nobias")
    write_dir(out, back.hf_config, back.state)
    hf = getattr(T, FAMILIES[family][0]).from_pretrained(out).eval()
    plain = build_model(config).eval()
    load_weights(plain, state)
    src, mask, tgt = inputs(family)
    with torch.no_grad():
        diff = (plain.logits(tgt, plain.encode(src, mask), mask)
                - hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits).abs().max().item()
    assert diff < 1e-5


def test_converted_config_file_loads(pair, tmp_path):
    """The written uer config states every key (none falls back to a file default)."""
    from uer.config import save_config
    _, _, _, converted, _ = pair
    path = str(tmp_path / "model.json")
    save_config(converted.config, path)
    assert load_config(path) == converted.config


# --- the scripts, end to end --------------------------------------------------------------------------

def test_scripts_convert_and_generate_like_transformers(tmp_path):
    """scripts/convert.py (its main, in process: the script is a shim over it) turns a BART directory into
    a uer checkpoint + config that carries the decoder start (</s> = id 2); scripts/generate_seq2seq.py
    decodes from it, greedy and with beams, exactly what transformers' generate does; converting back
    gives a directory transformers loads to the same logits."""
    from uer.cli.generate_seq2seq import main as generate_main
    from uer.convert.cli import main as convert_main
    hf = tiny_hf("bart")
    src_dir = saved(hf, tmp_path / "hf")
    # A vocabulary whose specials sit at BART's ids: <s> 0 ([CLS]), <pad> 1, </s> 2 ([SEP]).
    vocab = ["[CLS]", "[PAD]", "[SEP]", "[UNK]"] + [f"w{i}" for i in range(4, VOCAB)]
    vocab_path = str(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    model, config = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", src_dir, "--output_model_path", model,
                  "--output_config_path", config])
    assert load_config(config).decoder_start_token_id == 2

    g = torch.Generator().manual_seed(5)
    lines = [[int(t) for t in torch.randint(4, VOCAB, (n,), generator=g)] for n in (5, 3, 7, 2)]
    (tmp_path / "src.txt").write_text("".join(" ".join(vocab[t] for t in ids) + "\n" for ids in lines),
                                      encoding="utf-8")
    width = max(len(ids) for ids in lines) + 2
    src = torch.full((len(lines), width), 1)
    mask = torch.zeros_like(src)
    for i, ids in enumerate(lines):
        row = [0] + ids + [2]                             # the script's [CLS] source [SEP]
        src[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    steps = 10
    for beams in (1, 3):
        out = str(tmp_path / f"out{beams}.txt")
        generate_main(["--load_model_path", model, "--config_path", config, "--vocab_path", vocab_path,
                       "--tokenizer", "space", "--test_path", str(tmp_path / "src.txt"), "--prediction_path", out,
                       "--max_new_tokens", str(steps), "--beam_width", str(beams), "--device", "cpu"])
        expected = hf_generate(hf, src, mask, "bart", max_new_tokens=steps, num_beams=beams, length_penalty=1.0,
                               early_stopping="never")
        with open(out, encoding="utf-8") as f:
            assert f.read().splitlines() == [" ".join(vocab[t] for t in row if t != 2) for row in expected]
        assert any(len(row) < steps for row in expected) and any(len(row) == steps for row in expected)

    back = str(tmp_path / "back")
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model, "--config_path", config,
                  "--output_dir", back, "--architecture", "bart", "--vocab_path", vocab_path])
    reloaded = T.BartForConditionalGeneration.from_pretrained(back).eval()
    assert reloaded.config.pad_token_id == 1 and reloaded.config.decoder_start_token_id == 2
    s, m, tgt = inputs("bart")
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=s, attention_mask=m, decoder_input_ids=tgt).logits,
                           hf(input_ids=s, attention_mask=m, decoder_input_ids=tgt).logits)


# --- uer models built from the shipped configs ---------------------------------------------------------

SHRINK = dict(vocab_size=VOCAB, emb_size=32, hidden_size=32, feedforward_size=48, heads_num=4, layers_num=2,
              decoder_layers_num=1, max_seq_length=40, dropout=0.0)


@pytest.mark.parametrize("shipped,architecture", [("t5/small", "t5"), ("t5_v1_1/small", "t5"), ("bart/base", "bart")])
def test_shipped_config_models_export(shipped, architecture, tmp_path):
    """A uer model from models/<family>/*.json (shrunk), random, exports to a directory transformers loads
    with every key, and gives its logits."""
    import dataclasses
    config = dataclasses.replace(load_config(os.path.join(REPO, "models", shipped + ".json")), **SHRINK)
    if config.attention_head_size:
        config.attention_head_size = 8
    torch.manual_seed(3)
    model = build_model(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name else 0.3 * torch.randn_like(p))
    state = model.state_dict()
    back = uer_to_hf(state, config, architecture)
    write_dir(str(tmp_path), back.hf_config, back.state)
    cls = {"t5": T.T5ForConditionalGeneration, "bart": T.BartForConditionalGeneration}[architecture]
    hf, info = cls.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    family = "bart" if architecture == "bart" else "t5"
    src, mask, tgt = inputs(family)
    with torch.no_grad():
        ours = model.logits(tgt, model.encode(src, mask), mask)
        theirs = hf.eval()(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
    # t5_v1_1's gelu_fast (torch's fused kernel) is exported as gated-gelu_pytorch_tanh, the same kernel.
    assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize("shipped,architecture", [("pegasus/base", "pegasus"), ("transformer/base", "marian")])
def test_interleaved_sinusoids_are_refused_for_export(shipped, architecture):
    import dataclasses
    config = dataclasses.replace(load_config(os.path.join(REPO, "models", shipped + ".json")), **SHRINK)
    if not config.share_embedding:
        config.share_embedding = True
    state = build_model(config).state_dict()
    with pytest.raises(ConfigError, match="'embedding' is \\['word', 'sinusoidalpos'\\].*sinusoidalpos_halves"):
        uer_to_hf(state, config, architecture)
