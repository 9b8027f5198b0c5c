"""UER-py / TencentPretrain checkpoints <-> uer (uer/convert/uer_py.py), on the real UER-py fixtures in
``$UER_DATA_DIR/uer_py_checkpoints`` (trained and evaluated by UER-py's own code, see their READMEs):
the imported models reproduce UER-py's reference tensors through our model classes, and the export
gives back exactly the file UER-py wrote.  Plus UER-py's LayerNorm against a hand computation, config
errors, and the refusal of a UER-py file where a uer checkpoint is expected."""

import json
import math
import os

import numpy as np
import pytest
import torch

from uer.config import config_from_dict
from uer.convert.uer_py import uer_py_config_to_uer, uer_py_to_uer, uer_to_uer_py
from uer.errors import CheckpointError, ConfigError
from uer.layers.norms import UerPyLayerNorm, build_norm
from uer.models import build_model
from uer.models.weights import load_weights

ATOL = 1e-5


# ------------------------------------------------------------------------------------------------
# UER-py's LayerNorm
# ------------------------------------------------------------------------------------------------

def test_uer_py_layernorm_matches_a_hand_computation():
    norm = UerPyLayerNorm(4, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.1, -0.2, 0.3]))
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    # mean 3; deviations -2 -1 0 3; unbiased variance (4 + 1 + 0 + 9) / 3; eps added to the std
    std = math.sqrt(14.0 / 3.0)
    expected = [1.0 * -2 / (std + 1e-6) + 0.0, 2.0 * -1 / (std + 1e-6) + 0.1,
                0.5 * 0 / (std + 1e-6) - 0.2, -1.0 * 3 / (std + 1e-6) + 0.3]
    assert torch.allclose(norm(x), torch.tensor([expected]), atol=1e-6)
    # not torch's LayerNorm (biased variance, eps under the root): a visible difference at 4 features
    torch_ln = torch.nn.LayerNorm(4, eps=1e-6)
    with torch.no_grad():
        torch_ln.weight.copy_(norm.weight)
        torch_ln.bias.copy_(norm.bias)
    assert (torch_ln(x) - norm(x)).abs().max() > 1e-2


def test_uer_py_layernorm_is_a_config_norm_kind():
    cfg = config_from_dict({"emb_size": 8, "hidden_size": 8, "feedforward_size": 16, "heads_num": 2,
                            "layers_num": 1, "vocab_size": 10, "layernorm": "uer_py", "layernorm_eps": 1e-6})
    model = build_model(cfg)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "UerPyLayerNorm" in kinds and "LayerNorm" not in kinds
    assert isinstance(build_norm("uer_py", 8, 1e-6), UerPyLayerNorm)
    half = build_norm("uer_py", 8, 1e-6)(torch.randn(2, 8).to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


# ------------------------------------------------------------------------------------------------
# The fixtures
# ------------------------------------------------------------------------------------------------

FIXTURES = ("bert_tiny", "gpt2_tiny")


def _fixture(data_dir, name):
    folder = os.path.join(data_dir, "uer_py_checkpoints", name)
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} is missing (UER-py checkpoint fixtures)")
    state = torch.load(os.path.join(folder, "model.bin"), map_location="cpu", weights_only=True)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    return folder, state, config, np.load(os.path.join(folder, "reference.npz"))


@pytest.fixture(scope="module", params=FIXTURES)
def imported(request, data_dir):
    folder, state, config, ref = _fixture(data_dir, request.param)
    conv = uer_py_to_uer(state, config, os.path.join(folder, "config.json"))
    model = build_model(conv.config)
    load_weights(model, conv.state)          # strict
    model.eval()
    return request.param, state, conv, model, ref


def _diff(got, ref, key):
    return float((got - torch.from_numpy(ref[key])).abs().max())


def test_imported_model_reproduces_uer_py_reference_outputs(imported):
    name, _, conv, model, ref = imported
    src, seg = torch.from_numpy(ref["src"]), torch.from_numpy(ref["seg"])
    assert conv.config.layernorm == "uer_py" and conv.config.layernorm_eps == 1e-6
    assert conv.config.vocab_size == 21128 and conv.config.padded_vocab_size == 21184
    diffs = {}
    with torch.no_grad():
        emb = model.embedding(src, seg)
        diffs["emb"] = _diff(emb, ref, "emb")
        if name == "bert_tiny":
            hidden = model.encoder(emb, seg)
            diffs["hidden"] = _diff(hidden, ref, "hidden")
            every = torch.arange(src.size(1)).expand_as(src)
            diffs["mlm_logits"] = _diff(model.target.mlm.logits(hidden, every), ref, "mlm_logits")
            sp = model.target.sp
            diffs["sp_logits"] = _diff(sp.linear_2(torch.tanh(sp.linear_1(hidden[:, 0]))), ref, "sp_logits")
            pair_src, pair_seg = torch.from_numpy(ref["pair_src"]), torch.from_numpy(ref["pair_seg"])
            pair = model.encode(pair_src, pair_seg)
            diffs["pair_hidden"] = _diff(pair, ref, "pair_hidden")
            diffs["pair_sp_logits"] = _diff(sp.linear_2(torch.tanh(sp.linear_1(pair[:, 0]))), ref, "pair_sp_logits")
        else:
            # UER-py's causal mask ignores seg, so its padding positions also attend to earlier padding;
            # ours masks padding keys.  Real positions agree either way; every position (padding
            # included) agrees when every position is marked real.
            real = seg > 0
            hidden = model.encoder(emb, seg)
            diffs["hidden[real positions]"] = float((hidden - torch.from_numpy(ref["hidden"]))[real].abs().max())
            hidden_all = model.encoder(emb, torch.ones_like(seg))
            diffs["hidden"] = _diff(hidden_all, ref, "hidden")
            diffs["lm_logits"] = _diff(model.target.lm.logits(hidden_all), ref, "lm_logits")
    print(name, {k: f"{v:.2e}" for k, v in diffs.items()})
    assert all(v <= ATOL for v in diffs.values()), diffs


def test_export_gives_back_the_uer_py_file(imported):
    name, state, conv, model, _ = imported
    back = uer_to_uer_py({k: v for k, v in model.state_dict().items()}, conv.config)
    assert sorted(back.state) == sorted(state)                # no missing or unexpected UER-py names
    for key, tensor in state.items():
        assert back.state[key].shape == tensor.shape and torch.equal(back.state[key], tensor), key
    tied = {"bert_tiny": "target.mlm.linear_2.weight", "gpt2_tiny": "target.lm.output_layer.weight"}[name]
    assert back.state[tied] is back.state["embedding.word.embedding.weight"]   # one storage, as UER-py saves it
    # the exported config builds the same model again
    again = uer_py_to_uer(back.state, back.hf_config, "exported config")
    assert again.config == conv.config


def test_whole_resolved_arguments_load_as_a_config(data_dir):
    folder, state, config, _ = _fixture(data_dir, "bert_tiny")
    with open(os.path.join(folder, "resolved_args.json"), encoding="utf-8") as f:
        resolved = json.load(f)
    a = uer_py_config_to_uer(resolved, 21128, "resolved_args.json")
    b = uer_py_config_to_uer(config, 21128, "config.json")
    assert a == b


def test_tied_copy_that_differs_is_refused(data_dir):
    _, state, config, _ = _fixture(data_dir, "bert_tiny")
    state = dict(state)
    state["target.mlm.linear_2.weight"] = state["target.mlm.linear_2.weight"] + 1
    with pytest.raises(CheckpointError, match="tie_weights"):
        uer_py_to_uer(state, config, "config.json")


def test_checkpoint_that_does_not_fit_the_config_names_the_keys(data_dir):
    _, state, config, _ = _fixture(data_dir, "bert_tiny")
    with pytest.raises(CheckpointError, match="target.sp.linear_1.weight"):
        uer_py_to_uer(state, {**config, "target": ["mlm"]}, "config.json")


# ------------------------------------------------------------------------------------------------
# UER-py configs
# ------------------------------------------------------------------------------------------------

BERT_BASE = {"emb_size": 768, "feedforward_size": 3072, "hidden_size": 768, "hidden_act": "gelu",
             "heads_num": 12, "layers_num": 12, "max_seq_length": 512, "dropout": 0.1,
             "data_processor": "bert", "embedding": ["word", "pos", "seg"], "encoder": "transformer",
             "mask": "fully_visible", "target": ["mlm", "sp"], "tie_weights": True}


def test_uer_py_defaults_fill_omitted_keys():
    albert = {"emb_size": 128, "feedforward_size": 3072, "hidden_size": 768, "hidden_act": "relu",
              "heads_num": 12, "layers_num": 12, "max_seq_length": 512, "dropout": 0.0,
              "data_processor": "albert", "embedding": ["word", "pos", "seg"], "encoder": "transformer",
              "mask": "fully_visible", "factorized_embedding_parameterization": True,
              "parameter_sharing": True, "target": ["mlm", "sp"]}     # UER-py's models/albert/base_config.json
    c = uer_py_config_to_uer(albert, 21128, "albert/base_config.json")
    assert c.layernorm_eps == 1e-6 and c.layernorm == "uer_py" and c.tie_weights is False
    assert c.layernorm_positioning == "post" and c.feed_forward == "dense"


@pytest.mark.parametrize("key, value, match", [
    ("hiden_size", 768, "'hiden_size'.*Did you mean 'hidden_size'"),
    ("decoder", "transformer", "key 'decoder_layers_num' is missing"),
    ("relative_position_embedding", True, "'remove_attention_scale'.*before"),
    ("encoder", "lstm", "'encoder'.*'lstm'"),
    ("layernorm", "t5", "'layernorm'.*'t5'"),
    ("target", ["mlm", "bilm"], "'target'.*'bilm'"),
])
def test_bad_uer_py_config_key_is_named(key, value, match):
    with pytest.raises(ConfigError, match=match):
        uer_py_config_to_uer({**BERT_BASE, key: value}, 21128, "my_config.json")


def test_missing_size_key_is_named():
    data = dict(BERT_BASE)
    del data["heads_num"]
    with pytest.raises(ConfigError, match="key 'heads_num' is missing"):
        uer_py_config_to_uer(data, 21128, "my_config.json")


def test_albert_round_trip_untied_and_shared():
    """No ALBERT fixture: a random uer model in UER-py's ALBERT shape exports to UER-py's names (one shared
    layer, encoder.linear, an untied mlm output layer) and comes back tensor for tensor."""
    albert = {**BERT_BASE, "emb_size": 16, "hidden_size": 32, "feedforward_size": 64, "heads_num": 2,
              "layers_num": 3, "factorized_embedding_parameterization": True, "parameter_sharing": True,
              "tie_weights": False, "data_processor": "albert"}
    config = uer_py_config_to_uer(albert, 100, "albert.json")
    torch.manual_seed(0)
    model = build_model(config)
    exported = uer_to_uer_py(model.state_dict(), config)
    keys = set(exported.state)
    assert "encoder.linear.weight" in keys and "encoder.transformer.self_attn.linear_layers.0.weight" in keys
    assert not any(k.startswith("encoder.transformer.0.") for k in keys)
    assert exported.state["target.mlm.linear_2.weight"].shape == (100, 16)
    assert exported.state["embedding.word.embedding.weight"].shape == (100, 16)
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    own = model.state_dict()
    assert sorted(back.state) == sorted(own)
    for k in own:       # vocabulary tensors: the real rows come back, the padding rows as zeros
        rows = 100 if own[k].shape[0] == config.padded_vocab_size else own[k].shape[0]
        assert torch.equal(back.state[k][:rows], own[k][:rows]), k
        assert not back.state[k][rows:].any(), k


def test_models_trained_with_another_norm_are_not_exported():
    config = config_from_dict({**BERT_BASE, "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
                               "heads_num": 2, "layers_num": 1, "vocab_size": 50})
    with pytest.raises(ConfigError, match="'layernorm' is 'normal'.*uer_py"):
        uer_to_uer_py(build_model(config).state_dict(), config)


# ------------------------------------------------------------------------------------------------
# scripts/convert.py, and UER-py files where a uer checkpoint is expected
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES + ("t5_tiny",))
def test_convert_command_both_ways(data_dir, tmp_path, name):
    from uer.config import load_config
    from uer.convert.cli import main as convert_main
    folder, state, config, _ = _fixture(data_dir, name)
    ours = tmp_path / "ours.bin"
    convert_main(["--from", "uer_py", "--to", "uer", "--input_model_path", os.path.join(folder, "model.bin"),
                  "--input_config_path", os.path.join(folder, "config.json"), "--output_model_path", str(ours)])
    norm_kind = "t5" if name == "t5_tiny" else "uer_py"
    assert load_config(str(tmp_path / "ours.json")).layernorm == norm_kind    # our config, beside the output
    back = tmp_path / "uer_py" / "model.bin"
    back.parent.mkdir()
    convert_main(["--from", "uer", "--to", "uer_py", "--input_model_path", str(ours),
                  "--config_path", str(tmp_path / "ours.json"), "--output_model_path", str(back),
                  "--vocab_path", os.path.join(folder, "vocab.txt")])
    written = torch.load(str(back), map_location="cpu", weights_only=True)
    assert sorted(written) == sorted(state) and all(torch.equal(written[k], state[k]) for k in state)
    with open(tmp_path / "uer_py" / "model.json", encoding="utf-8") as f:
        exported_config = json.load(f)
    assert {k: v for k, v in exported_config.items() if k in config} == config   # their config, same values


def test_convert_command_refuses_an_unsupported_direction(capsys):
    from uer.convert.cli import main as convert_main
    with pytest.raises(SystemExit):
        convert_main(["--from", "uer_py", "--to", "hf", "--input_model_path", "x.bin"])
    assert "--from uer_py --to uer" in capsys.readouterr().err


def test_uer_py_checkpoint_where_ours_is_expected_points_at_the_command(data_dir, tmp_path):
    folder, _, config, _ = _fixture(data_dir, "bert_tiny")
    ours = config_from_dict({**config, "vocab_size": 21128})      # their config.json loads here as it is
    path = os.path.join(folder, "model.bin")
    with pytest.raises(CheckpointError, match="UER-py.*scripts/convert.py --from uer_py --to uer "
                                              f"--input_model_path {path}"):
        load_weights(build_model(ours), path)                      # what pretrain.py --pretrained_model_path does


def test_finetuning_from_a_uer_py_checkpoint_is_refused_with_the_command(data_dir, tiny_corpus, tmp_path):
    from uer.cli.tasks import finetune
    folder, _, _, _ = _fixture(data_dir, "bert_tiny")
    with pytest.raises(CheckpointError, match="--from uer_py --to uer"):
        finetune("classification", [
            "--pretrained_model_path", os.path.join(folder, "model.bin"),
            "--config_path", os.path.join(folder, "config.json"), "--vocab_path", os.path.join(folder, "vocab.txt"),
            "--train_path", str(tiny_corpus / "dev.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
            "--output_model_path", str(tmp_path / "clf.bin"), "--epochs_num", "1", "--seq_length", "16"])


def test_gated_biasless_lm_with_output_bias_round_trip():
    """Options without a fixture: the table still maps every tensor, both ways, with UER-py's names."""
    gpt = {**BERT_BASE, "emb_size": 16, "hidden_size": 16, "feedforward_size": 32, "heads_num": 2,
           "layers_num": 2, "embedding": ["word", "pos"], "remove_embedding_layernorm": True,
           "layernorm_positioning": "pre", "mask": "causal", "target": ["lm"], "tie_weights": False,
           "has_lmtarget_bias": True, "feed_forward": "gated", "remove_transformer_bias": True}
    config = uer_py_config_to_uer(gpt, 70, "gpt.json")
    exported = uer_to_uer_py(build_model(config).state_dict(), config)
    keys = set(exported.state)
    assert {"target.lm.output_layer.weight", "target.lm.output_layer.bias",
            "encoder.transformer.1.feed_forward.linear_gate.weight", "encoder.layer_norm.gamma"} <= keys
    assert not any(k.endswith("linear_layers.0.bias") or k.endswith("final_linear.bias") for k in keys)
    assert exported.state["target.lm.output_layer.bias"].shape == (70,)
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    assert sorted(back.state) == sorted(build_model(config).state_dict())


def test_finetuning_from_an_imported_checkpoint(data_dir, tiny_corpus, tmp_path):
    from uer.cli.tasks import finetune
    from uer.convert.cli import main as convert_main
    folder, _, _, _ = _fixture(data_dir, "bert_tiny")
    convert_main(["--from", "uer_py", "--to", "uer", "--input_model_path", os.path.join(folder, "model.bin"),
                  "--input_config_path", os.path.join(folder, "config.json"),
                  "--output_model_path", str(tmp_path / "bert.bin")])
    results = finetune("classification", [          # the config beside the converted weights is found
        "--pretrained_model_path", str(tmp_path / "bert.bin"), "--vocab_path", os.path.join(folder, "vocab.txt"),
        "--train_path", str(tiny_corpus / "dev.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
        "--output_model_path", str(tmp_path / "clf.bin"), "--epochs_num", "1", "--seq_length", "16",
        "--batch_size", "25"])
    assert "dev" in results and (tmp_path / "clf.bin").exists()
    with open(tmp_path / "clf.bin.config.json", encoding="utf-8") as f:
        assert json.load(f)["layernorm"] == "uer_py"


# ------------------------------------------------------------------------------------------------
# T5 (encoder-decoder): the t5_tiny fixture, and the shapes it does not cover
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def t5_imported(data_dir):
    folder, state, config, ref = _fixture(data_dir, "t5_tiny")
    conv = uer_py_to_uer(state, config, os.path.join(folder, "config.json"))
    model = build_model(conv.config)
    load_weights(model, conv.state)          # strict
    model.eval()
    return folder, state, config, conv, model, ref


def test_t5_config_maps_to_ours(t5_imported):
    folder, _, _, conv, _, _ = t5_imported
    c = conv.config
    assert (c.decoder, c.tgt_embedding, c.decoder_layers_num, c.share_embedding) == ("transformer", ["word"], 2, True)
    assert c.layernorm == "t5" and c.layernorm_eps == 1e-6 and c.layernorm_positioning == "pre"
    assert c.relative_position_embedding and c.relative_attention_buckets_num == 32 and c.remove_attention_scale
    assert c.relative_attention_max_distance == 128 and c.remove_transformer_bias and c.remove_embedding_layernorm
    # UER-py's tie_weights ties the output layer to the decoder table before share_embedding swaps it out
    assert c.tie_weights is False and c.scale_tied_output is False
    assert any("separate matrix" in n for n in conv.notes)
    assert c.vocab_size == 21228 and c.padded_vocab_size == 21248
    with open(os.path.join(folder, "resolved_args.json"), encoding="utf-8") as f:
        assert uer_py_config_to_uer(json.load(f), 21228, "resolved_args.json") == c


def test_t5_imported_model_reproduces_uer_py_reference_outputs(t5_imported):
    """UER-py's own T5 modules computed these tensors (see the fixture's README); ours through
    Model.embedding / encoder / tgt_embedding / decode / logits."""
    _, _, _, _, model, ref = t5_imported
    def t(k):
        return torch.from_numpy(ref[k])
    src, seg, tgt_in, tgt_seg, tgt_out = t("src"), t("seg"), t("tgt_in"), t("tgt_seg"), t("tgt_out")
    real = tgt_seg > 0
    diffs = {}
    with torch.no_grad():
        emb = model.embedding(src, seg)
        diffs["emb"] = _diff(emb, ref, "emb")
        hidden = model.encoder(emb, seg)
        diffs["hidden"] = _diff(hidden, ref, "hidden")
        diffs["memory"] = _diff(model.encode(src, seg), ref, "memory")
        diffs["tgt_emb"] = _diff(model.tgt_embedding(tgt_in, tgt_seg), ref, "tgt_emb")
        # UER-py's decoder self-attention is causal only (tgt_seg unused), so its padding positions also
        # see earlier padding; ours hides padding keys.  Real positions agree either way; every position
        # agrees with tgt_seg=None (no padding marked).
        decoded = model.decode(tgt_in, hidden, seg, tgt_seg)
        diffs["decoder_hidden[real positions]"] = float((decoded - t("decoder_hidden"))[real].abs().max())
        diffs["decoder_hidden"] = _diff(model.decode(tgt_in, hidden, seg), ref, "decoder_hidden")
        diffs["lm_logits"] = _diff(model.logits(tgt_in, hidden, seg), ref, "lm_logits")
        # the training loss: UER-py's LmTarget NLL over tgt_seg > 0, from its own logits
        out = model({"src": src, "seg": seg, "tgt_in": tgt_in, "tgt_out": tgt_out, "tgt_seg": tgt_seg})
        nll = torch.nn.functional.cross_entropy(t("lm_logits")[real], tgt_out[real])
        diffs["loss"] = abs(float(out["loss"]) - float(nll))
    print("t5_tiny", {k: f"{v:.2e}" for k, v in diffs.items()})
    assert all(v <= ATOL for v in diffs.values()), diffs


def test_t5_export_gives_back_the_uer_py_file(t5_imported):
    _, state, config, conv, model, _ = t5_imported
    back = uer_to_uer_py(model.state_dict(), conv.config)
    assert sorted(back.state) == sorted(state)                # 49 names: no missing or unexpected ones
    for key, tensor in state.items():
        assert back.state[key].shape == tensor.shape and torch.equal(back.state[key], tensor), key
    # one storage under both names, as UER-py's share_embedding saves it; the output layer is its own
    assert back.state["tgt_embedding.word.embedding.weight"] is back.state["embedding.word.embedding.weight"]
    assert back.state["target.lm.output_layer.weight"] is not back.state["embedding.word.embedding.weight"]
    assert {k: v for k, v in back.hf_config.items() if k in config} == config
    again = uer_py_to_uer(back.state, back.hf_config, "exported config")
    assert again.config == conv.config


def test_t5_tied_copy_that_differs_is_refused(t5_imported):
    _, state, config, _, _, _ = t5_imported
    state = dict(state)
    state["tgt_embedding.word.embedding.weight"] = state["tgt_embedding.word.embedding.weight"] + 1
    with pytest.raises(CheckpointError, match="tgt_embedding.word.embedding.weight should be a copy of "
                                              "embedding.word.embedding.weight"):
        uer_py_to_uer(state, config, "config.json")


def test_t5_checkpoint_with_fewer_decoder_layers_than_the_config_names_them(t5_imported):
    _, state, config, _, _, _ = t5_imported
    with pytest.raises(CheckpointError, match="decoder.transformer_decoder.2.self_attn.linear_layers.0.weight"):
        uer_py_to_uer(state, {**config, "decoder_layers_num": 3}, "config.json")


T5_V1_1 = {"emb_size": 16, "feedforward_size": 24, "hidden_size": 16, "hidden_act": "gelu_fast",
           "attention_head_size": 4, "heads_num": 2, "layers_num": 2, "decoder_layers_num": 3, "dropout": 0.0,
           "data_processor": "t5", "embedding": ["word"], "relative_position_embedding": True,
           "remove_embedding_layernorm": True, "tgt_embedding": ["word"], "share_embedding": True,
           "encoder": "transformer", "mask": "fully_visible", "layernorm_positioning": "pre",
           "feed_forward": "gated", "remove_attention_scale": True, "layernorm": "t5",
           "remove_transformer_bias": True, "decoder": "transformer", "target": ["lm"]}   # models/t5-v1_1 shape


def _round_trip(config):
    torch.manual_seed(0)
    model = build_model(config)
    exported = uer_to_uer_py(model.state_dict(), config)
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    own = model.state_dict()
    assert sorted(back.state) == sorted(own) and back.config == config
    for k in own:
        rows = config.vocab_size if own[k].shape[0] == config.padded_vocab_size else own[k].shape[0]
        assert torch.equal(back.state[k][:rows], own[k][:rows]), k
    return exported


def test_t5_v1_1_shape_round_trip():
    """UER-py's models/t5-v1_1 shape (gated gelu_fast FFN, head size x heads != hidden, decoder deeper than
    the encoder, no tie_weights): every tensor under UER-py's names and back."""
    config = uer_py_config_to_uer(T5_V1_1, 70, "t5_v1_1.json")
    exported = _round_trip(config)
    keys = set(exported.state)
    assert {"decoder.transformer_decoder.2.feed_forward.linear_gate.weight",
            "decoder.self_pos_emb.relative_attention_bias.weight",
            "encoder.relative_pos_emb.relative_attention_bias.weight", "target.lm.output_layer.weight"} <= keys
    assert exported.state["decoder.transformer_decoder.0.self_attn.linear_layers.0.weight"].shape == (8, 16)
    assert exported.hf_config["attention_head_size"] == 4 and exported.hf_config["decoder_layers_num"] == 3


def test_unshared_tied_post_ln_encoder_decoder_round_trip():
    """An unshared decoder table tied to the output layer (UER-py stores both names), post-LN with biases
    and UER-py's LayerNorm, word + pos target embedding with its own norm (the BART shape)."""
    bart = {**T5_V1_1, "relative_position_embedding": False, "remove_attention_scale": False, "layernorm": "normal",
            "remove_transformer_bias": False, "remove_embedding_layernorm": False, "feed_forward": "dense",
            "layernorm_positioning": "post", "share_embedding": False, "tie_weights": True,
            "embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"], "attention_head_size": 8}
    config = uer_py_config_to_uer(bart, 70, "bart.json")
    assert config.tie_weights and not config.share_embedding and config.layernorm == "uer_py"
    exported = _round_trip(config)
    state = exported.state
    assert state["target.lm.output_layer.weight"] is state["tgt_embedding.word.embedding.weight"]
    assert "tgt_embedding.layer_norm.gamma" in state and "decoder.transformer_decoder.0.context_attn.final_linear.bias" in state
    assert "decoder.layer_norm.gamma" not in state and "embedding.word.embedding.weight" in state


def test_our_t5_config_exports_with_the_output_scale_folded_in():
    """models/t5/small.json ties the output layer to the shared table and rescales by hidden**-0.5, which UER-py
    cannot express: the export writes the scaled table as its own output layer; the logits still agree."""
    from uer.config import load_config
    config = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "models", "t5", "small.json"),
                         {"vocab_size": 70, "emb_size": 24, "hidden_size": 24, "feedforward_size": 32,
                          "heads_num": 2, "attention_head_size": 12, "layers_num": 1, "decoder_layers_num": 2})
    torch.manual_seed(0)
    model = build_model(config).eval()
    exported = uer_to_uer_py(model.state_dict(), config)
    assert exported.hf_config["tie_weights"] and exported.hf_config["layernorm"] == "t5"
    assert any("folded" in n for n in exported.notes)
    back = uer_py_to_uer(exported.state, exported.hf_config, "exported")
    again = build_model(back.config).eval()
    load_weights(again, back.state)
    src, tgt = torch.randint(1, 70, (2, 9)), torch.randint(1, 70, (2, 5))
    seg = torch.ones_like(src)
    with torch.no_grad():
        a = model.logits(tgt, model.encode(src, seg), seg)
        b = again.logits(tgt, again.encode(src, seg), seg)
    print("folded output scale, max |logit diff|", float((a - b).abs().max()))   # 24**-0.5 is not exact
    assert float((a - b).abs().max()) <= 1e-6


@pytest.mark.parametrize("change, match", [
    ({"layernorm": "t5", "remove_embedding_layernorm": False}, "'layernorm'.*remove_embedding_layernorm"),
    ({"decoder": "lstm"}, "'decoder'.*'lstm'"),
    ({"tgt_embedding": ["word", "dual"]}, "'tgt_embedding'.*'dual'"),
    ({"remove_attention_scale": False}, "'remove_attention_scale'.*before"),
    ({"target": ["mlm"]}, "'layernorm'.*mlm"),
])
def test_bad_t5_config_is_named(change, match):
    with pytest.raises(ConfigError, match=match):
        uer_py_config_to_uer({**T5_V1_1, **change}, 70, "t5.json")


def test_target_vocabulary_that_does_not_fit_the_shared_table_is_refused():
    config = uer_py_config_to_uer({**T5_V1_1, "share_embedding": False}, 70, "t5.json")
    state = dict(uer_to_uer_py(build_model(config).state_dict(), config).state)
    state["tgt_embedding.word.embedding.weight"] = torch.zeros(90, 16)
    with pytest.raises(ConfigError, match="share_embedding"):     # 90 target rows, one shared table of 70
        uer_py_to_uer(state, T5_V1_1, "t5.json")


def test_our_decoder_options_uer_py_lacks_are_refused_on_export():
    import dataclasses
    config = uer_py_config_to_uer(T5_V1_1, 70, "t5.json")
    for change, match in (({"decoder_heads_num": 4}, "'decoder_heads_num'"), ({"scale_embedding": True}, "'scale_embedding'"),
                          ({"relative_attention_max_distance": 64}, "fixed 128")):
        bad = dataclasses.replace(config, **change)
        with pytest.raises(ConfigError, match=match):
            uer_to_uer_py(build_model(config).state_dict(), bad)


def test_rms_norm_exports_as_uer_py_t5_layernorm():
    import dataclasses
    config = uer_py_config_to_uer(T5_V1_1, 70, "t5.json")
    rms = dataclasses.replace(config, layernorm="rms")
    exported = uer_to_uer_py(build_model(rms).state_dict(), rms)
    assert exported.hf_config["layernorm"] == "t5" and "decoder.layer_norm.weight" in exported.state


def test_uer_py_t5_file_where_ours_is_expected_points_at_the_command(t5_imported):
    folder, _, _, conv, _, _ = t5_imported
    path = os.path.join(folder, "model.bin")
    with pytest.raises(CheckpointError, match=f"UER-py.*--from uer_py --to uer --input_model_path {path}"):
        load_weights(build_model(conv.config), path)
