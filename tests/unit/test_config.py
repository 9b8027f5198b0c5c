"""Model configs: schema checks with file/key/fix in every message, YAML, overrides, legacy names."""

import dataclasses
import json
import math

import pytest

import uer.modules  # noqa: F401  (module-name checks: registered by the modules, as the CLIs import them)
from uer.config import (MaskingConfig, ModelConfig, config_from_dict, load_config, normalize_legacy,
                        save_config, validate)
from uer.errors import ConfigError

TINY = {
    "embedding": ["word", "pos", "seg"], "emb_size": 64, "hidden_size": 64, "feedforward_size": 128,
    "heads_num": 4, "layers_num": 2, "max_seq_length": 32, "hidden_act": "gelu", "dropout": 0.1,
    "encoder": "transformer", "mask": "fully_visible", "layernorm_positioning": "post",
    "layernorm_eps": 1e-12, "target": ["mlm", "sp"], "tie_weights": True, "data_processor": "bert",
}


def write_json(tmp_path, data, name="model.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return str(path)


def load_error(tmp_path, data, name="model.json") -> str:
    path = write_json(tmp_path, data, name)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert path in msg, f"error does not name the file: {msg}"
    return msg


# ---------------------------------------------------------------------- defaults and derived values

def test_defaults_are_bert_base_and_valid():
    c = ModelConfig()
    assert (c.hidden_size, c.heads_num, c.layers_num, c.emb_size) == (768, 12, 12, 768)
    assert c.embedding == ["word", "pos", "seg"] and c.target == ["mlm", "sp"]
    assert c.masking == MaskingConfig()
    assert (c.masking.mask_prob, c.masking.replace_mask, c.masking.replace_random) == (0.15, 0.8, 0.1)
    validate(c)   # no error
    # Default lists are not shared between instances.
    a, b = ModelConfig(), ModelConfig()
    a.target.append("cls")
    assert b.target == ["mlm", "sp"]


def test_derived_properties():
    c = ModelConfig(hidden_size=64, heads_num=4)
    assert c.head_size == 16
    assert ModelConfig(hidden_size=64, heads_num=4, attention_head_size=8).head_size == 8
    assert ModelConfig(dropout=0.3).attention_dropout_prob == 0.3
    assert ModelConfig(dropout=0.3, attention_dropout=0.0).attention_dropout_prob == 0.0
    for vocab, padded in [(1, 64), (64, 64), (65, 128), (1000, 1024), (21128, 21184), (30522, 30528)]:
        p = ModelConfig(vocab_size=vocab).padded_vocab_size
        assert p == padded and p % 64 == 0 and p >= vocab


def test_to_dict_round_trips_through_config_from_dict():
    c = config_from_dict({**TINY, "masking": {"mask_prob": 0.2, "whole_word_masking": True}})
    d = c.to_dict()
    assert d["masking"] == dataclasses.asdict(c.masking)
    assert config_from_dict(d) == c


def test_save_config_then_load_gives_equal_config(tmp_path):
    c = config_from_dict({**TINY, "vocab_size": 300, "masking": {"span_masking": True}})
    path = str(tmp_path / "out" / "config.json")
    save_config(c, path)
    assert load_config(path) == c


def test_a_file_omitting_a_key_means_what_uer_py_meant(tmp_path):
    """UER-py's models/bert/base_config.json states no layernorm_eps (1e-6 there) and its ALBERT config no
    tie_weights (untied there): loaded from a file they mean the same here; stated values and command-line
    overrides win; configs built in code keep the dataclass defaults."""
    uer_py_bert = {k: v for k, v in TINY.items() if k not in ("layernorm_eps", "tie_weights")}
    c = load_config(write_json(tmp_path, uer_py_bert))
    assert (c.layernorm_eps, c.tie_weights) == (1e-6, False)
    assert config_from_dict(uer_py_bert).layernorm_eps == ModelConfig().layernorm_eps == 1e-12
    stated = load_config(write_json(tmp_path, {**uer_py_bert, "layernorm_eps": 1e-12, "tie_weights": True}, "s.json"))
    assert (stated.layernorm_eps, stated.tie_weights) == (1e-12, True)
    overridden = load_config(write_json(tmp_path, uer_py_bert, "o.json"), {"layernorm_eps": 1e-5, "tie_weights": True})
    assert (overridden.layernorm_eps, overridden.tie_weights) == (1e-5, True)
    # A saved config states every key, so saving and loading never changes a model.
    built = config_from_dict(uer_py_bert)
    path = str(tmp_path / "saved.json")
    save_config(built, path)
    assert load_config(path) == built


# ---------------------------------------------------------------------- file errors

def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="does not exist") as exc:
        load_config(path)
    assert path in str(exc.value) and "models/" in str(exc.value)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "hidden_size": 64,\n  "heads_num": 4,\n}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    msg = str(exc.value)
    assert str(path) in msg and "line 4" in msg and "not valid JSON" in msg


def test_json_top_level_must_be_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON object") as exc:
        load_config(str(path))
    assert str(path) in str(exc.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hidden_size: 64\nheads_num: [4\nlayers_num: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    msg = str(exc.value)
    assert str(path) in msg and "not valid YAML" in msg and "line " in msg


# ---------------------------------------------------------------------- key and type errors

def test_unknown_key_with_did_you_mean(tmp_path):
    msg = load_error(tmp_path, {**TINY, "hiden_size": 64})
    assert "key 'hiden_size'" in msg and "unknown key" in msg and "Did you mean 'hidden_size'?" in msg


def test_unknown_key_inside_masking(tmp_path):
    msg = load_error(tmp_path, {**TINY, "masking": {"mask_probb": 0.2}})
    assert "'masking'" in msg and "key 'mask_probb'" in msg and "Did you mean 'mask_prob'?" in msg


@pytest.mark.parametrize("key,value,expected", [
    ("hidden_size", "64", "must be an integer"),
    ("layers_num", True, "must be an integer"),
    ("heads_num", 2.5, "must be an integer"),
    ("target", 3, "must be a list"),
    ("embedding", 5, "must be a list"),
    ("dropout", "0.1", "must be a number"),
    ("dropout", False, "must be a number"),
    ("tie_weights", 1, "must be true or false"),
    ("mask", 1, "must be a string"),
    ("masking", [0.15], "must be an object"),
])
def test_wrong_types_name_file_key_and_expected_type(tmp_path, key, value, expected):
    msg = load_error(tmp_path, {**TINY, key: value})
    assert f"key '{key}'" in msg and expected in msg
    if key != "masking":   # the nested-object message lists the valid keys instead of the value
        assert repr(value) in msg


def test_list_items_are_type_checked(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": ["mlm", 7]})
    assert "key 'target'" in msg and "must be a string" in msg


def test_list_type_message_is_grammatical(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": 3})
    assert "must be a list of strings" in msg


def test_integral_float_and_int_for_float_are_accepted():
    c = config_from_dict({**TINY, "hidden_size": 64.0, "emb_size": 64, "dropout": 0, "layernorm_eps": 1})
    assert c.hidden_size == 64 and isinstance(c.hidden_size, int)
    assert c.dropout == 0.0 and isinstance(c.dropout, float)
    assert isinstance(c.layernorm_eps, float)


def test_single_string_for_list_is_wrapped():
    c = config_from_dict({**TINY, "target": "mlm"})
    assert c.target == ["mlm"]


@pytest.mark.parametrize("key,value,kind", [
    ("embedding", ["word", "poss"], "embedding"),
    ("encoder", "transfomer", "encoder"),
    ("target", ["mlm", "spp"], "target"),
])
def test_unknown_module_names_use_the_registry_message(tmp_path, key, value, kind):
    msg = load_error(tmp_path, {**TINY, key: value})
    assert f"unknown {kind}" in msg and f"key '{key}'" in msg and f"Valid {kind}s:" in msg
    assert "Did you mean" in msg


@pytest.mark.parametrize("key,value", [
    ("hidden_act", "gelux"), ("mask", "bidirectional"), ("layernorm_positioning", "middle"),
    ("layernorm", "batch"), ("feed_forward", "moe"), ("pooling", "median"),
])
def test_bad_choices_list_the_valid_ones(tmp_path, key, value):
    msg = load_error(tmp_path, {**TINY, key: value})
    assert f"key '{key}'" in msg and f"'{value}' is not one of" in msg


def test_embedding_must_include_word(tmp_path):
    msg = load_error(tmp_path, {**TINY, "embedding": ["pos", "seg"]})
    assert "key 'embedding'" in msg and '"word"' in msg


def test_empty_target_list(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": []})
    assert "key 'target'" in msg


@pytest.mark.parametrize("key", ["emb_size", "hidden_size", "feedforward_size", "heads_num",
                                 "layers_num", "max_seq_length"])
def test_sizes_must_be_positive(tmp_path, key):
    data = {**TINY, key: 0}
    if key == "emb_size":
        data["factorized_embedding_parameterization"] = True
    msg = load_error(tmp_path, data)
    assert f"key '{key}'" in msg and "must be positive" in msg


def test_negative_vocab_size(tmp_path):
    msg = load_error(tmp_path, {**TINY, "vocab_size": -1})
    assert "key 'vocab_size'" in msg


def test_negative_attention_head_size_rejected(tmp_path):
    msg = load_error(tmp_path, {**TINY, "attention_head_size": -4})
    assert "attention_head_size" in msg


# ---------------------------------------------------------------------- impossible combinations

def test_heads_not_dividing_hidden_size(tmp_path):
    msg = load_error(tmp_path, {**TINY, "hidden_size": 64, "emb_size": 64, "heads_num": 5})
    assert "'hidden_size'/'heads_num'" in msg and "not divisible" in msg
    assert "e.g. 4" in msg and "attention_head_size" in msg


def test_explicit_head_size_allows_non_dividing_heads():
    c = config_from_dict({**TINY, "heads_num": 5, "attention_head_size": 16})
    assert c.head_size == 16


def test_emb_size_differs_without_factorized_flag(tmp_path):
    msg = load_error(tmp_path, {**TINY, "emb_size": 32})
    assert "emb_size 32" in msg and "hidden_size 64" in msg
    assert "factorized_embedding_parameterization" in msg
    c = config_from_dict({**TINY, "emb_size": 32, "factorized_embedding_parameterization": True})
    assert c.emb_size == 32


def test_lm_target_with_fully_visible_mask(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": ["lm"], "mask": "fully_visible"})
    assert "'lm'" in msg and "fully_visible" in msg and '"causal"' in msg
    assert config_from_dict({**TINY, "target": ["lm"], "mask": "causal"}).mask == "causal"
    assert config_from_dict({**TINY, "target": ["lm"], "mask": "causal_with_prefix"}).target == ["lm"]


def test_mlm_target_with_causal_mask(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": ["mlm"], "mask": "causal"})
    assert "'mlm'" in msg and "causal" in msg


def test_cls_target_needs_two_labels(tmp_path):
    msg = load_error(tmp_path, {**TINY, "target": ["cls"], "labels_num": 1})
    assert "key 'labels_num'" in msg


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_dropout_range(tmp_path, value):
    msg = load_error(tmp_path, {**TINY, "dropout": value})
    assert "key 'dropout'" in msg


def test_attention_dropout_range(tmp_path):
    msg = load_error(tmp_path, {**TINY, "attention_dropout": 1.0})
    assert "key 'attention_dropout'" in msg


@pytest.mark.parametrize("key", ["is_moe", "has_residual_attention"])
def test_unsupported_uer_keys_get_a_specific_message(tmp_path, key):
    msg = load_error(tmp_path, {**TINY, key: True})
    assert f"key '{key}'" in msg and "not supported by this version" in msg
    assert "unknown key" not in msg


# ---------------------------------------------------------------------- masking

@pytest.mark.parametrize("masking,key", [
    ({"mask_prob": 0.0}, "masking.mask_prob"),
    ({"mask_prob": 1.0}, "masking.mask_prob"),
    ({"mask_prob": -0.2}, "masking.mask_prob"),
    ({"replace_mask": 0.9, "replace_random": 0.2}, "masking.replace_mask"),
    ({"replace_mask": -0.1}, "masking.replace_mask"),
    ({"replace_random": -0.1}, "masking.replace_mask"),
    ({"span_masking": True, "span_geo_prob": 0.0}, "masking.span_geo_prob"),
    ({"span_masking": True, "span_max_length": 0}, "masking.span_geo_prob"),
])
def test_invalid_masking_fractions(tmp_path, masking, key):
    msg = load_error(tmp_path, {**TINY, "masking": masking})
    assert key in msg


def test_valid_masking_edge_cases():
    c = config_from_dict({**TINY, "masking": {"replace_mask": 1.0, "replace_random": 0.0}})
    assert c.masking.replace_mask == 1.0
    c = config_from_dict({**TINY, "masking": {"span_masking": True, "span_geo_prob": 1.0,
                                              "span_max_length": 1}})
    assert c.masking.span_masking
    # span parameters are only checked when span masking is on
    c = config_from_dict({**TINY, "masking": {"span_geo_prob": 0.0}})
    assert c.masking.span_geo_prob == 0.0


def test_nan_replace_fraction_rejected(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps({**TINY, "masking": {"replace_mask": math.nan}}), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_nan_mask_prob_rejected(tmp_path):
    msg = load_error(tmp_path, {**TINY, "masking": {"mask_prob": math.nan}})
    assert "masking.mask_prob" in msg


# ---------------------------------------------------------------------- YAML, overrides, legacy

def test_yaml_loads_the_same_as_json(tmp_path):
    yaml = pytest.importorskip("yaml")
    data = {**TINY, "masking": {"mask_prob": 0.2, "whole_word_masking": True}}
    json_path = write_json(tmp_path, data)
    for suffix in (".yaml", ".yml"):
        yaml_path = tmp_path / ("model" + suffix)
        yaml_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        assert load_config(str(yaml_path)) == load_config(json_path)


def test_hand_written_yaml_loads(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("embedding: [word, pos]\nemb_size: 64\nhidden_size: 64\nheads_num: 4\n"
                    "layernorm_eps: 0.000001\ntarget: lm\nmask: causal\n"
                    "masking:\n  whole_word_masking: true\n", encoding="utf-8")
    c = load_config(str(path))
    assert c.embedding == ["word", "pos"] and c.target == ["lm"] and c.mask == "causal"
    assert c.layernorm_eps == 1e-6 and c.masking.whole_word_masking is True


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("emb_size: 64\nhidden_size: 64\nheads_num: 4\nlayernorm_eps: 1e-12\n", encoding="utf-8")
    assert load_config(str(path)).layernorm_eps == 1e-12


def test_yaml_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("hidden_size: sixty-four\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    assert str(path) in str(exc.value) and "key 'hidden_size'" in str(exc.value)


def test_overrides_win_over_the_file(tmp_path):
    path = write_json(tmp_path, {**TINY, "masking": {"mask_prob": 0.2}})
    c = load_config(path, {"layers_num": 3, "dropout": 0.0, "vocab_size": 300,
                           "whole_word_masking": True, "replace_random": 0.2})
    assert (c.layers_num, c.dropout, c.vocab_size) == (3, 0.0, 300)
    assert c.masking.whole_word_masking is True and c.masking.replace_random == 0.2
    assert c.masking.mask_prob == 0.2      # file masking values are kept, not reset
    assert load_config(path).layers_num == 2   # the file is not changed


def test_override_of_mask_prob_replaces_file_value(tmp_path):
    path = write_json(tmp_path, {**TINY, "masking": {"mask_prob": 0.2}})
    assert load_config(path, {"mask_prob": 0.3}).masking.mask_prob == 0.3


def test_bad_override_names_the_override(tmp_path):
    path = write_json(tmp_path, TINY)
    with pytest.raises(ConfigError) as exc:
        load_config(path, {"heads_num": 5})
    msg = str(exc.value)
    assert path in msg and "command-line overrides" in msg and "heads_num" in msg
    with pytest.raises(ConfigError, match="masking.mask_prob"):
        load_config(path, {"mask_prob": 2.0})


def test_override_with_bad_masking_in_file_is_a_config_error(tmp_path):
    path = write_json(tmp_path, {**TINY, "masking": 5})
    with pytest.raises(ConfigError):
        load_config(path, {"whole_word_masking": True})


def test_whole_masking_object_override_without_masking_in_file(tmp_path):
    path = write_json(tmp_path, TINY)
    assert load_config(path, {"masking": {"mask_prob": 0.3}}).masking.mask_prob == 0.3


def test_whole_masking_object_override_wins_over_file(tmp_path):
    path = write_json(tmp_path, {**TINY, "masking": {"mask_prob": 0.2}})
    assert load_config(path, {"masking": {"mask_prob": 0.3}}).masking.mask_prob == 0.3


def test_legacy_names_normalise(tmp_path):
    assert normalize_legacy({"embedding": "word_pos_seg"})["embedding"] == ["word", "pos", "seg"]
    assert normalize_legacy({"embedding": "word_sinusoidalpos"})["embedding"] == ["word", "sinusoidalpos"]
    assert normalize_legacy({"target": "bert"})["target"] == ["mlm", "sp"]
    assert normalize_legacy({"target": "albert"})["target"] == ["mlm", "sp"]
    assert normalize_legacy({"layernorm_positioning": "normal"})["layernorm_positioning"] == "post"
    original = {"embedding": "word_pos", "target": "lm"}
    out = normalize_legacy(original)
    assert out == {"embedding": ["word", "pos"], "target": ["lm"]}
    assert original == {"embedding": "word_pos", "target": "lm"}   # input not mutated
    path = write_json(tmp_path, {**TINY, "embedding": "word_pos_seg", "target": "bert",
                                 "layernorm_positioning": "normal"})
    c = load_config(path)
    assert c.embedding == ["word", "pos", "seg"] and c.target == ["mlm", "sp"]
    assert c.layernorm_positioning == "post"


def test_config_from_dict_validates():
    with pytest.raises(ConfigError, match="my-source"):
        config_from_dict({**TINY, "heads_num": 5}, source="my-source")
