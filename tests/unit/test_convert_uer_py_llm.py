"""TencentPretrain LLaMA / BLOOM and UER-py BART / PEGASUS / Transformer checkpoints <-> uer
(uer/convert/uer_py.py, uer/convert/uer_py_llm.py).  No UER-py fixtures exist for these families, so:

- LLaMA: a random tiny transformers ``LlamaForCausalLM`` is turned into a TencentPretrain state dict by
  their published recipe (scripts/convert_llama_from_huggingface_to_tencentpretrain.py: HF names ->
  theirs, q/k rows "unpermuted" into interleaved rotary pairs; the formula is written out here), imported
  with ``--from uer_py``: logits equal transformers' to 1e-5; exported back: their state dict exactly.
- their published configs (copied below) build models with the published parameter counts (meta device);
- BART / PEGASUS / Transformer: exact round trips, and UER-py's sinusoid table re-derived from their
  code's arithmetic (uer/embeddings/sinusoidalpos_embedding.py at UER-py 5743050).
"""

import dataclasses
import math

import pytest
import torch

from uer.convert.uer_py import uer_config_to_uer_py, uer_py_config_to_uer, uer_py_to_uer, uer_to_uer_py
from uer.convert.uer_py_llm import RotaryPairs
from uer.convert.transforms import Sizes
from uer.embeddings.position import sinusoid_table
from uer.errors import CheckpointError, ConfigError
from uer.models import build_model
from uer.models.weights import load_weights

TOL = 1e-5

# TencentPretrain models/llama2/7b_config.json and 70b_config.json (HEAD ed79843), as they are.
LLAMA2_7B = {"emb_size": 4096, "feedforward_size": 11008, "hidden_size": 4096, "hidden_act": "silu",
             "heads_num": 32, "layers_num": 32, "dropout": 0.0, "data_processor": "lm", "max_seq_length": 2048,
             "embedding": ["word"], "remove_transformer_bias": True, "remove_embedding_layernorm": True,
             "rotary_position_embedding": True, "encoder": "transformer", "feed_forward": "gated",
             "mask": "causal", "layernorm_positioning": "pre", "layernorm": "rms", "target": ["lm"]}
LLAMA2_70B = {**LLAMA2_7B, "emb_size": 8192, "feedforward_size": 28672, "hidden_size": 8192, "heads_num": 64,
              "local_kv_heads_num": 8, "layers_num": 80}
# models/bloom/1b1_config.json
BLOOM_1B1 = {"emb_size": 1536, "feedforward_size": 6144, "hidden_size": 1536, "hidden_act": "gelu",
             "heads_num": 16, "layers_num": 24, "dropout": 0.0, "data_processor": "lm", "embedding": ["word"],
             "remove_transformer_bias": False, "has_lmtarget_bias": False, "remove_embedding_layernorm": True,
             "encoder": "transformer", "mask": "causal", "layernorm_positioning": "pre", "target": ["lm"],
             "tie_weights": True, "alibi_position_embedding": True, "layer_number_scale": True}


# ------------------------------------------------------------------------------------------------
# The rotary row order
# ------------------------------------------------------------------------------------------------

def test_rotary_pairs_reorder_interleaved_rows_into_halves_per_head():
    # two heads of 4 features; TencentPretrain's rows per head: (x0, y0, x1, y1) = pairs (0,1), (2,3)
    theirs = torch.tensor([[10.], [11.], [20.], [21.], [30.], [31.], [40.], [41.]])
    t = RotaryPairs(heads=2, head_size=4, what="query")
    sizes = Sizes(vocab_size=1, padded_vocab_size=64)
    (ours,) = t.to_uer([theirs], sizes, [])
    # ours: (x0, x1, y0, y1): pair i = (i, i + 2), head by head
    assert ours.flatten().tolist() == [10., 20., 11., 21., 30., 40., 31., 41.]
    (back,) = t.to_hf([ours], sizes, [])
    assert torch.equal(back, theirs)
    with pytest.raises(CheckpointError, match="expected 2 heads x 4 = 8 rows"):
        t.to_uer([theirs[:6]], sizes, [])


# ------------------------------------------------------------------------------------------------
# LLaMA: transformers -> TencentPretrain (their recipe) -> uer -> TencentPretrain
# ------------------------------------------------------------------------------------------------

def tencentpretrain_unpermute(w, n_heads, dim):
    """Their script's ``unpermute``: w.reshape(n_heads, 2, dim // n_heads // 2, dim).transpose(2, 1)
    .reshape(dim, dim), written for any output size (k under GQA has kv heads x head size rows)."""
    rows = w.size(0)
    return w.reshape(n_heads, 2, rows // n_heads // 2, dim).transpose(2, 1).reshape(rows, dim)


def hf_llama_to_tencentpretrain(hf_state, layers, heads, kv_heads, dim):
    """The HF -> TencentPretrain mapping of their script (k unpermuted by its own kv head count)."""
    out = {"embedding.word.embedding.weight": hf_state["model.embed_tokens.weight"]}
    for i in range(layers):
        hf, tp = f"model.layers.{i}.", f"encoder.transformer.{i}."
        out[tp + "self_attn.linear_layers.0.weight"] = tencentpretrain_unpermute(
            hf_state[hf + "self_attn.q_proj.weight"], heads, dim)
        out[tp + "self_attn.linear_layers.1.weight"] = tencentpretrain_unpermute(
            hf_state[hf + "self_attn.k_proj.weight"], kv_heads, dim)
        out[tp + "self_attn.linear_layers.2.weight"] = hf_state[hf + "self_attn.v_proj.weight"]
        out[tp + "self_attn.final_linear.weight"] = hf_state[hf + "self_attn.o_proj.weight"]
        out[tp + "layer_norm_1.weight"] = hf_state[hf + "input_layernorm.weight"]
        out[tp + "feed_forward.linear_gate.weight"] = hf_state[hf + "mlp.gate_proj.weight"]
        out[tp + "feed_forward.linear_1.weight"] = hf_state[hf + "mlp.up_proj.weight"]
        out[tp + "feed_forward.linear_2.weight"] = hf_state[hf + "mlp.down_proj.weight"]
        out[tp + "layer_norm_2.weight"] = hf_state[hf + "post_attention_layernorm.weight"]
    out["encoder.layer_norm.weight"] = hf_state["model.norm.weight"]
    out["target.lm.output_layer.weight"] = hf_state["lm_head.weight"]
    return out


V, DIM, HEADS, LAYERS = 99, 32, 4, 2


def _tiny_llama(kv_heads):
    T = pytest.importorskip("transformers")
    T.logging.set_verbosity_error()
    # LLaMA-2 uses rms_norm_eps 1e-5 in transformers, but TencentPretrain's configs omit layernorm_eps, so
    # its RMSNorm runs at its default 1e-6: the HF model here uses what the TencentPretrain model computes.
    cfg = T.LlamaConfig(vocab_size=V, hidden_size=DIM, intermediate_size=48, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, num_key_value_heads=kv_heads, max_position_embeddings=64,
                        rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = T.LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(kv_heads)
    with torch.no_grad():
        for name, p in model.named_parameters():     # distinct values everywhere: mapping bugs show
            p.copy_(torch.randn(p.shape, generator=g) * 0.15 + (1.0 if "norm" in name else 0.0))
    return model.eval()


def _tp_config(kv_heads):
    shrunk = {**LLAMA2_7B, "emb_size": DIM, "hidden_size": DIM, "feedforward_size": 48, "heads_num": HEADS,
              "layers_num": LAYERS, "max_seq_length": 64}
    return {**shrunk, "local_kv_heads_num": kv_heads} if kv_heads != HEADS else shrunk


def _logits(model, src):
    with torch.no_grad():
        return model.target.lm.logits(model.encode(src, torch.ones_like(src)))[..., :V]


@pytest.mark.parametrize("kv_heads", [HEADS, 2], ids=["mha", "gqa"])
def test_tencentpretrain_llama_imports_with_transformers_logits_and_exports_back(kv_heads):
    hf = _tiny_llama(kv_heads)
    tp_state = hf_llama_to_tencentpretrain(hf.state_dict(), LAYERS, HEADS, kv_heads, DIM)
    tp_config = _tp_config(kv_heads)
    conv = uer_py_to_uer(tp_state, tp_config, "llama2/7b_config.json (shrunk)")
    c = conv.config
    assert c.rotary_position_embedding and c.kv_heads == kv_heads and c.layernorm == "rms"
    assert c.layernorm_eps == 1e-6 and c.rope_theta == 10000.0 and not c.tie_weights
    model = build_model(c).eval()
    load_weights(model, conv.state)                              # strict
    src = torch.randint(3, V, (2, 13), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = hf(src).logits
    diff = float((_logits(model, src) - want).abs().max())
    print(f"TencentPretrain LLaMA ({kv_heads} kv heads) vs transformers: max |logit diff| {diff:.2e}")
    assert diff <= TOL

    # export: their state dict, name for name and tensor for tensor, and their config's keys and values
    back = uer_to_uer_py(model.state_dict(), c)
    assert sorted(back.state) == sorted(tp_state)
    for key, tensor in tp_state.items():
        assert torch.equal(back.state[key], tensor), key
    assert {k: back.hf_config[k] for k in tp_config} == tp_config

    # control: the same file read without the per-head re-ordering (interleaved pairs rotated as halves)
    plain = dict(conv.state)
    for i in range(LAYERS):
        theirs = f"encoder.transformer.{i}.self_attn.linear_layers."
        plain[f"encoder.layers.{i}.attention.query.weight"] = tp_state[theirs + "0.weight"]
        plain[f"encoder.layers.{i}.attention.key.weight"] = tp_state[theirs + "1.weight"]
    load_weights(model, plain)
    assert float((_logits(model, src) - want).abs().max()) > 1e-3


def test_convert_script_both_ways_on_a_tencentpretrain_llama(tmp_path):
    import json
    from uer.convert.cli import main as convert_main
    tp_state = hf_llama_to_tencentpretrain(_tiny_llama(2).state_dict(), LAYERS, HEADS, 2, DIM)
    torch.save(tp_state, tmp_path / "llama.bin")
    (tmp_path / "config.json").write_text(json.dumps(_tp_config(2)), encoding="utf-8")
    convert_main(["--from", "uer_py", "--to", "uer", "--input_model_path", str(tmp_path / "llama.bin"),
                  "--input_config_path", str(tmp_path / "config.json"), "--output_model_path", str(tmp_path / "ours.bin")])
    ours_config = tmp_path / "ours.json"
    assert json.loads(ours_config.read_text(encoding="utf-8"))["kv_heads_num"] == 2
    convert_main(["--from", "uer", "--to", "uer_py", "--input_model_path", str(tmp_path / "ours.bin"),
                  "--config_path", str(ours_config), "--output_model_path", str(tmp_path / "back.bin")])
    back = torch.load(tmp_path / "back.bin", map_location="cpu", weights_only=True)
    assert sorted(back) == sorted(tp_state) and all(torch.equal(back[k], tp_state[k]) for k in tp_state)


def test_rms_norm_with_a_decoder_is_refused():
    with pytest.raises(ConfigError, match="'layernorm': 'rms' with a decoder"):
        uer_py_config_to_uer({**BART, **SHRINK, "layernorm": "rms", "layernorm_positioning": "pre",
                              "remove_embedding_layernorm": True}, 70, "bart.json")


def test_their_script_reshape_of_k_by_n_heads_does_not_fit_grouped_query_attention():
    """Their script unpermutes k with n_heads (all it knows are LLaMA-1 shapes); with 2 key heads of 8
    features the reshape cannot even be done, hence kv heads for k here."""
    k = _tiny_llama(2).state_dict()["model.layers.0.self_attn.k_proj.weight"]          # (2 x 8, 32)
    with pytest.raises(RuntimeError):
        k.reshape(HEADS, 2, DIM // HEADS // 2, DIM).transpose(2, 1).reshape(DIM, DIM)


def test_llama_checkpoint_with_the_wrong_kv_heads_is_named():
    hf = _tiny_llama(2)
    tp_state = hf_llama_to_tencentpretrain(hf.state_dict(), LAYERS, HEADS, 2, DIM)
    with pytest.raises(CheckpointError, match="local_kv_heads_num"):
        uer_py_to_uer(tp_state, _tp_config(HEADS), "7b_config.json")     # the config lost local_kv_heads_num


@pytest.mark.parametrize("config, params", [(LLAMA2_7B, 6_738_415_616), (LLAMA2_70B, 68_976_648_192)],
                         ids=["llama2-7b", "llama2-70b"])
def test_published_tencentpretrain_llama_configs_build_the_published_sizes(config, params):
    c = uer_py_config_to_uer(config, 32000, "llama2 config")
    with torch.device("meta"):
        model = build_model(c)
    assert sum(p.numel() for p in model.parameters()) == params
    assert c.kv_heads == config.get("local_kv_heads_num", 32) and c.layernorm_eps == 1e-6
    out = uer_config_to_uer_py(c)
    assert {k: out[k] for k in config} == config


@pytest.mark.parametrize("change, match", [
    ({"rope_theta": 500000.0}, "'rope_theta'.*fixed at 10000"),
    ({"attention_qkv_bias": True, "remove_transformer_bias": True}, "'attention_qkv_bias'"),
    ({"attention_head_size": 16}, "'attention_head_size'"),
])
def test_llama_options_tencentpretrain_lacks_are_refused_on_export(change, match):
    c = dataclasses.replace(uer_py_config_to_uer(_tp_config(2), V, "tiny.json"), **change)
    with pytest.raises(ConfigError, match=match):
        uer_config_to_uer_py(c)


def test_llama_with_huggingface_rms_eps_exports_the_eps_key():
    c = dataclasses.replace(uer_py_config_to_uer(_tp_config(2), V, "tiny.json"), layernorm_eps=1e-5)
    out = uer_config_to_uer_py(c)
    assert out["layernorm_eps"] == 1e-5 and out["layernorm"] == "rms"
    assert uer_py_config_to_uer(out, V, "exported") == c


def test_rotary_config_that_could_not_run_in_tencentpretrain_is_refused():
    with pytest.raises(ConfigError, match="'attention_head_size'.*hidden_size // heads_num"):
        uer_py_config_to_uer({**_tp_config(HEADS), "attention_head_size": 16}, V, "tiny.json")


# ------------------------------------------------------------------------------------------------
# BLOOM: what TencentPretrain's code computes with its BLOOM configs
# ------------------------------------------------------------------------------------------------

def test_tencentpretrain_bloom_config_imports_as_their_code_runs_it():
    notes = []
    c = uer_py_config_to_uer(BLOOM_1B1, 250880, "bloom/1b1_config.json", notes)
    assert not c.alibi_position_embedding and c.embedding == ["word"] and c.layernorm == "uer_py"
    assert any("never adds an ALiBi bias" in n for n in notes)
    with torch.device("meta"):
        model = build_model(c)
    # transformers' bloom-1b1 has 1,065,314,304 parameters; these configs drop its embedding layer norm
    # (2 x 1536 weights) and the vocabulary rounds up to 250,880 = 64 x 3920 (no padding rows)
    assert sum(p.numel() for p in model.parameters()) == 1_065_314_304 - 2 * 1536
    small = uer_py_config_to_uer({**BLOOM_1B1, "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
                                  "heads_num": 2, "layers_num": 2}, 70, "bloom tiny")
    torch.manual_seed(0)
    ours = build_model(small).state_dict()
    exported = uer_to_uer_py(ours, small)
    assert exported.state["target.lm.output_layer.weight"] is exported.state["embedding.word.embedding.weight"]
    assert "encoder.transformer.1.self_attn.linear_layers.0.bias" in exported.state
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    assert back.config == small
    assert all(_same_real_rows(back.state[k], ours[k], small) for k in ours)
    again = uer_to_uer_py(back.state, back.config)                  # their file -> ours -> their file
    assert sorted(again.state) == sorted(exported.state)
    assert all(torch.equal(again.state[k], exported.state[k]) for k in exported.state)


def _same_real_rows(a, b, config):
    """Equal, but for our vocabulary padding rows (never exported: they come back as zeros)."""
    rows = config.vocab_size if b.dim() and b.shape[0] == config.padded_vocab_size else None
    return torch.equal(a[:rows], b[:rows])


def test_our_alibi_model_is_refused_on_export():
    c = dataclasses.replace(uer_py_config_to_uer({**BLOOM_1B1, "emb_size": 16, "hidden_size": 16,
                                                  "feedforward_size": 32, "heads_num": 2, "layers_num": 1},
                                                 70, "bloom tiny"), alibi_position_embedding=True)
    with pytest.raises(ConfigError, match="never applies ALiBi"):
        uer_config_to_uer_py(c)


# ------------------------------------------------------------------------------------------------
# UER-py BART / PEGASUS / Transformer
# ------------------------------------------------------------------------------------------------

SHRINK = {"emb_size": 16, "feedforward_size": 32, "hidden_size": 16, "heads_num": 2, "layers_num": 2,
          "decoder_layers_num": 3, "max_seq_length": 40}
# UER-py models/bart/base_config.json, models/pegasus/base_config.json, models/transformer/base_config.json
BART = {"emb_size": 768, "feedforward_size": 3072, "hidden_size": 768, "hidden_act": "gelu", "heads_num": 12,
        "layers_num": 6, "decoder_layers_num": 6, "max_seq_length": 1024, "dropout": 0.1, "data_processor": "bart",
        "embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"], "share_embedding": True,
        "encoder": "transformer", "mask": "fully_visible", "decoder": "transformer", "target": ["lm"],
        "tie_weights": True, "has_lmtarget_bias": True}
PEGASUS = {"emb_size": 768, "feedforward_size": 3072, "hidden_size": 768, "hidden_act": "relu", "heads_num": 12,
           "layers_num": 12, "decoder_layers_num": 12, "max_seq_length": 1024, "dropout": 0.1,
           "data_processor": "gsg", "embedding": ["word", "sinusoidalpos"], "remove_embedding_layernorm": True,
           "tgt_embedding": ["word", "sinusoidalpos"], "share_embedding": True, "encoder": "transformer",
           "mask": "fully_visible", "layernorm_positioning": "pre", "decoder": "transformer", "target": ["lm"],
           "has_lmtarget_bias": True, "tie_weights": True}
TRANSFORMER = {"emb_size": 512, "feedforward_size": 2048, "hidden_size": 512, "hidden_act": "relu", "heads_num": 8,
               "layers_num": 6, "decoder_layers_num": 6, "max_seq_length": 512, "dropout": 0.1,
               "data_processor": "mt", "embedding": ["word", "sinusoidalpos"],
               "tgt_embedding": ["word", "sinusoidalpos"], "encoder": "transformer", "decoder": "transformer",
               "mask": "fully_visible", "target": ["lm"], "tie_weights": True}


def _exact_round_trip(their_config):
    config = uer_py_config_to_uer(their_config, 70, "config.json")
    torch.manual_seed(0)
    model = build_model(config)
    ours = model.state_dict()
    exported = uer_to_uer_py(ours, config)
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    assert back.config == config and sorted(back.state) == sorted(ours)
    assert all(_same_real_rows(back.state[k], ours[k], config) for k in ours)
    # and in the other direction: their file -> ours -> their file, tensor for tensor
    again = uer_to_uer_py(back.state, back.config)
    assert sorted(again.state) == sorted(exported.state)
    assert all(torch.equal(again.state[k], exported.state[k]) for k in exported.state)
    assert {k: exported.hf_config[k] for k in their_config} == their_config
    return config, model, exported


@pytest.mark.parametrize("name", ["bart", "pegasus", "transformer"])
def test_uer_py_seq2seq_configs_round_trip_exactly(name):
    their = {**{"bart": BART, "pegasus": PEGASUS, "transformer": TRANSFORMER}[name], **SHRINK}
    config, _, exported = _exact_round_trip(their)
    state = exported.state
    if name == "bart":
        # UER-py's learned positions start at row 0 (no +2 offset rows as in Hugging Face's BART)
        assert state["embedding.pos.embedding.weight"].shape == (40, 16)
        assert state["tgt_embedding.pos.embedding.weight"].shape == (40, 16)
        assert not config.scale_embedding
    else:
        assert config.embedding == ["word", "sinusoidalpos_uer_py"] and config.scale_embedding
        assert not any("sinusoid" in k for k in state)            # a fixed table: no parameter
    if config.share_embedding:        # tie_weights before share_embedding: the output layer is its own matrix
        assert state["target.lm.output_layer.weight"] is not state["embedding.word.embedding.weight"]
    else:                             # Transformer: tied to the decoder's own table
        assert state["target.lm.output_layer.weight"] is state["tgt_embedding.word.embedding.weight"]


def test_transformer_with_its_own_target_vocabulary_round_trips():
    """UER-py's mt models: the decoder's word table and the output layer have the target vocabulary's
    rows (UER-py's --tgt_vocab_path); its size is read from the file, the config does not say it."""
    their = {**TRANSFORMER, **SHRINK}
    src_config = uer_py_config_to_uer(their, 70, "transformer.json")
    config = dataclasses.replace(src_config, tgt_vocab_size=90)
    torch.manual_seed(0)
    exported = uer_to_uer_py(build_model(config).state_dict(), config)
    state = exported.state
    assert state["tgt_embedding.word.embedding.weight"].shape == (90, 16)
    assert state["target.lm.output_layer.weight"] is state["tgt_embedding.word.embedding.weight"]
    assert state["embedding.word.embedding.weight"].shape == (70, 16)
    back = uer_py_to_uer(state, exported.hf_config, "exported")
    assert back.config.tgt_vocab_size == 90 and back.config == config
    model = build_model(back.config)
    load_weights(model, back.state)                               # strict: our padded target rows
    assert back.state["tgt_embedding.word.embedding.weight"].shape == (128, 16)
    again = uer_to_uer_py(back.state, back.config)
    assert sorted(again.state) == sorted(state) and all(torch.equal(again.state[k], state[k]) for k in state)
    # an output bias over the target vocabulary too
    biased = dataclasses.replace(config, has_lmtarget_bias=True)
    with_bias = uer_to_uer_py(build_model(biased).state_dict(), biased)
    assert with_bias.state["target.lm.output_layer.bias"].shape == (90,)


def uer_py_sinusoid_rows(max_seq_length, emb_size):
    """UER-py's SinusoidalposEmbedding table for text (arrange_sincos_cross), from their code's math."""
    half_dim = emb_size // 2
    value = math.log(10000) / (half_dim - 1)
    half_exp = torch.exp(torch.arange(half_dim, dtype=torch.float) * -value)
    half_mat = torch.arange(max_seq_length, dtype=torch.float).unsqueeze(1) * half_exp.unsqueeze(0)
    emb = torch.zeros(max_seq_length, emb_size)
    emb[:, 0::2] = torch.sin(half_mat)
    emb[:, 1::2] = torch.cos(half_mat)
    emb[0, :] = 0                    # their [PAD] row (id 0 in their vocabularies); positions start at row 2
    return emb


def test_sinusoid_table_is_uer_py_s():
    theirs = uer_py_sinusoid_rows(512 + 2, 512)
    ours = sinusoid_table(512, 512, "uer_py")
    assert torch.equal(ours, theirs[2:])                      # bit for bit, offset 2
    # and not our Vaswani table (10000^(-2i/d)) nor the halves one
    assert float((sinusoid_table(512, 512) - theirs[2:]).abs().max()) > 0.1
    assert float((sinusoid_table(512, 512, "halves") - theirs[2:]).abs().max()) > 0.1


def test_pegasus_embedding_equals_uer_py_s_formula():
    """UER-py: word x sqrt(emb_size) (its WordEmbedding, because "sinusoidalpos" is in the embedding) +
    table rows 2 .. n + 1 for the n real tokens; no norm in PEGASUS."""
    config = uer_py_config_to_uer({**PEGASUS, **SHRINK}, 70, "pegasus.json")
    model = build_model(config).eval()
    src = torch.randint(1, 70, (2, 9))
    table = uer_py_sinusoid_rows(40, 16)
    word = model.embedding.word.weight
    with torch.no_grad():
        for emb in (model.embedding(src, torch.ones_like(src)), model.tgt_embedding(src, torch.ones_like(src))):
            want = word[src] * math.sqrt(16) + table[2:11]
            assert float((emb - want).abs().max()) <= 1e-6


def test_bad_seq2seq_embedding_on_export_is_named():
    config = uer_py_config_to_uer({**PEGASUS, **SHRINK}, 70, "pegasus.json")
    for change, match in (({"scale_embedding": False}, "'scale_embedding'"),
                          ({"embedding": ["word", "sinusoidalpos_halves"]}, "sinusoidalpos_halves")):
        with pytest.raises(ConfigError, match=match):
            uer_to_uer_py(build_model(config).state_dict(), dataclasses.replace(config, **change))
