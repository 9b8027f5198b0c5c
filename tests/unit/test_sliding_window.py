"""The decoder's causal sliding window (``sliding_window``: Mistral-7B-v0.1, Qwen2's upper layers).

Without transformers: the window attends exactly as an explicit mask (query - key < window), it is in
effect (a window of the whole length changes nothing, a short one does), no band is built while no key
can be outside it (the is_causal fast path stays), and bad keys are refused.  With transformers: random
tiny MistralForCausalLM / Qwen2ForCausalLM models with a window of 4 over 12-token sequences convert with
logits within 1e-5 (right and left padding), greedy generation far past the window equals transformers'
(its default cache and use_cache=False alike), our cached and uncached decoding give the same tokens,
and export writes the window back.
"""

import json

import pytest
import torch

from uer.config import ModelConfig, load_config, validate
from uer.errors import ConfigError
from uer.layers.attention import MultiHeadAttention
from uer.layers.local_attention import CausalWindow
from uer.layers.masks import AttentionMask

TOL = 1e-5
V = 99
SMALL = dict(vocab_size=V, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2)


def test_window_equals_explicit_mask_and_fast_path_kept():
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 2, 8, 0.0).eval()
    x = torch.randn(2, 9, 16)
    i = torch.arange(9)
    allowed = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < 3)
    with torch.no_grad():
        ours = attention(x, AttentionMask(None, is_causal=True), CausalWindow(3))
        explicit = attention(x, AttentionMask(allowed[None, None]))
        causal = attention(x, AttentionMask(None, is_causal=True))
        whole = attention(x, AttentionMask(None, is_causal=True), CausalWindow(9))
    assert torch.allclose(ours, explicit, atol=1e-6)
    assert (ours - causal).abs().max() > 1e-3            # the window is in effect
    assert torch.equal(whole, causal)                    # nothing outside it: the same fast path
    window = CausalWindow(3)
    assert window.bias(3, 3, "cpu") is None and window.bias(1, 3, "cpu") is None and window.bias(4, 4, "cpu") is not None
    band = window.bias(1, 6, "cpu")                      # one cached-decoding query after 5 keys
    assert band.shape == (1, 1, 1, 6) and torch.isinf(band[0, 0, 0, :3]).all() and (band[0, 0, 0, 3:] == 0).all()


def config(**kw):
    base = dict(embedding=["word"], encoder="transformer", mask="causal", target=["lm"], layers_num=2,
                hidden_size=16, emb_size=16, heads_num=2, feedforward_size=32)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("keys, match", [
    (dict(sliding_window=-1), "sliding_window"),
    (dict(sliding_window_from_layer=1), "sliding_window_from_layer"),
    (dict(sliding_window=4, mask="fully_visible", target=["mlm"]), "local_attention_window"),
    (dict(sliding_window=4, sliding_window_from_layer=2), "0 .. 1"),
    (dict(sliding_window=4, local_attention_window=4), "keep one"),
])
def test_bad_keys_refused(keys, match):
    with pytest.raises(ConfigError, match=match):
        validate(config(**keys), "m.json")
    validate(config(sliding_window=4, sliding_window_from_layer=1), "m.json")


def tiny_lm(window, **kw):
    from uer.models.model import build_model
    torch.manual_seed(0)
    cfg = config(vocab_size=64, max_seq_length=64, rotary_position_embedding=True, layernorm_positioning="pre",
                 layernorm="rms", feed_forward="gated", hidden_act="silu", remove_transformer_bias=True,
                 remove_embedding_layernorm=True, dropout=0.0, tie_weights=False, kv_heads_num=1,
                 sliding_window=window, **kw)
    validate(cfg, "m.json")
    return build_model(cfg)


def test_training_gradients_stay_inside_the_window():
    """One windowed layer (window 3): the output at position 8 depends on inputs 6, 7, 8 only; the layers
    before ``sliding_window_from_layer`` see everything."""
    for layers, first, receptive in ((1, 0, {6, 7, 8}), (2, 1, set(range(9)))):
        model = tiny_lm(3, layers_num=layers, sliding_window_from_layer=first).train()
        emb = torch.randn(1, 9, 16, requires_grad=True)
        model.encoder(emb, torch.ones(1, 9, dtype=torch.long))[0, 8].sum().backward()
        reached = {i for i in range(9) if emb.grad[0, i].abs().sum() > 0}
        assert reached == receptive, (layers, first, reached)


def test_cached_decoding_equals_recomputation_past_the_window():
    """Left-padded prompts, greedy and beam search: the cached tokens equal full recomputation, and the window
    changes what is generated (it is applied in both paths)."""
    from uer.generation import GenerationSettings, generate_lm
    prompts = [[5, 17, 33, 8, 21, 44, 9], [40, 2, 7], [60]]
    outputs = {}
    for window in (3, 0):
        model = tiny_lm(window, layers_num=2)
        for beam in (1, 3):
            settings = GenerationSettings(max_new_tokens=12, top_k=1, beam_width=beam, eos_id=None, pad_id=0)
            cached = generate_lm(model, prompts, settings)
            assert cached == generate_lm(model, prompts, settings, use_cache=False), (window, beam)
            alone = [generate_lm(model, [p], settings)[0] for p in prompts]
            assert cached == alone, (window, beam)
            outputs[window, beam] = cached
    assert outputs[3, 1] != outputs[0, 1]


# ---------------------------------------------------------------- against transformers
def hf_cases():
    T = pytest.importorskip("transformers")
    T.logging.set_verbosity_error()
    return {
        "mistral": lambda: T.MistralForCausalLM(T.MistralConfig(**SMALL, sliding_window=4)),
        # layer 0 full, layer 1 windowed
        "qwen2": lambda: T.Qwen2ForCausalLM(T.Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=4,
                                                          max_window_layers=1)),
    }


def converted(case, tmp_path):
    from tests.unit.test_convert_llama import load_uer, randomize
    from uer.convert.cli import main as convert_main
    torch.manual_seed(0)
    hf_model = randomize(hf_cases()[case]())
    hf_model.save_pretrained(tmp_path / "hf")
    paths = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "hf"), "--output_model_path", paths[0]])
    cfg = load_config(paths[1])
    return hf_model, load_uer(paths[0], cfg), cfg, paths


def padded(left: bool):
    g = torch.Generator().manual_seed(1)
    lengths = [12, 9, 5]
    src = torch.randint(3, V, (3, 12), generator=g)
    keep = torch.zeros_like(src, dtype=torch.bool)
    for b, n in enumerate(lengths):
        if left:
            keep[b, 12 - n:] = True
        else:
            keep[b, :n] = True
    src[~keep] = 0
    positions = (keep.long().cumsum(1) - 1).clamp(min=0)
    return src, keep, positions


def uer_logits(model, src, keep, positions):
    seg = keep.long()
    with torch.no_grad():
        hidden = model.encoder(model.embedding(src, seg, positions=positions), seg, positions=positions)
        return model.target.lm.logits(hidden)[..., :V]


@pytest.mark.parametrize("case", ["mistral", "qwen2"])
def test_logits_match_transformers_with_right_and_left_padding(case, tmp_path):
    hf_model, ours, cfg, paths = converted(case, tmp_path)
    assert cfg.sliding_window == 4 and cfg.sliding_window_from_layer == (1 if case == "qwen2" else 0)
    import dataclasses
    from tests.unit.test_convert_llama import load_uer
    unwindowed = load_uer(paths[0], dataclasses.replace(cfg, sliding_window=0, sliding_window_from_layer=0))
    wider = load_uer(paths[0], dataclasses.replace(cfg, sliding_window=5))
    for left in (False, True):
        src, keep, positions = padded(left)
        with torch.no_grad():
            theirs = hf_model(input_ids=src, attention_mask=keep.long(), position_ids=positions).logits
        diff = float((uer_logits(ours, src, keep, positions) - theirs)[keep].abs().max())
        print(f"\n{case} {'left' if left else 'right'} padding: max |uer - hf| = {diff:.2e}")
        assert diff <= TOL
        # Proof the window is applied, and exactly: without it, or one token wider, the logits differ.
        for other in (unwindowed, wider):
            assert float((uer_logits(other, src, keep, positions) - theirs)[keep].abs().max()) > 1e-3


@pytest.mark.parametrize("case", ["mistral", "qwen2"])
def test_greedy_generation_past_the_window_and_export(case, tmp_path):
    from uer.convert.cli import main as convert_main
    from uer.generation import GenerationSettings, generate_lm
    hf_model, ours, cfg, paths = converted(case, tmp_path)
    prompts = [[5, 17, 33, 8, 21, 44], [40, 2, 71], [90]]     # left-padded together; 14 new tokens >> window 4
    settings = GenerationSettings(max_new_tokens=14, top_k=1, eos_id=None, pad_id=0)
    cached, uncached = generate_lm(ours, prompts, settings), generate_lm(ours, prompts, settings, use_cache=False)
    assert cached == uncached
    for prompt, new in zip(prompts, cached):
        ids = torch.tensor([prompt])
        for use_cache in (True, False):
            expected = hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=14,
                                         pad_token_id=0, use_cache=use_cache)[0, len(prompt):].tolist()
            assert new == expected, (prompt, use_cache, new, expected)

    T = pytest.importorskip("transformers")
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", paths[0], "--config_path", paths[1],
                  "--output_dir", str(tmp_path / "back"), "--architecture", case])
    written = json.loads((tmp_path / "back" / "config.json").read_text())
    assert written["sliding_window"] == 4
    reloaded = T.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert reloaded.config.sliding_window == 4
    if case == "qwen2":
        assert reloaded.config.layer_types == ["full_attention", "sliding_attention"]
    src, keep, positions = padded(True)
    with torch.no_grad():
        again = reloaded(input_ids=src, attention_mask=keep.long(), position_ids=positions).logits
        theirs = hf_model(input_ids=src, attention_mask=keep.long(), position_ids=positions).logits
    assert torch.equal(again, theirs)


def test_windows_that_cannot_be_expressed_are_refused(tmp_path):
    T = pytest.importorskip("transformers")
    from tests.unit.test_convert_llama import randomize
    from uer.convert.cli import main as convert_main
    from uer.convert.llama import LlamaConverter, MistralConverter, Qwen2Converter
    # Qwen2 with a window on layer 0 only: not "every layer from one index on".
    directory = tmp_path / "qwen2"
    randomize(T.Qwen2ForCausalLM(T.Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=4,
                                                layer_types=["sliding_attention", "full_attention"])))\
        .save_pretrained(directory)
    with pytest.raises(SystemExit):
        convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(directory),
                      "--output_model_path", str(tmp_path / "x.bin")])
    assert not (tmp_path / "x.bin").exists()
    for listed, use in ((["sliding_attention", "full_attention"], True), (["full_attention", "sliding_attention"], False),
                        (["sliding_attention"], True)):
        with pytest.raises(ConfigError, match="layer_types"):
            Qwen2Converter().window_to_uer({"num_hidden_layers": 2, "use_sliding_window": use, "sliding_window": 4,
                                            "layer_types": listed})
    # transformers runs the listed layer_types, whatever max_window_layers says
    assert Qwen2Converter().window_to_uer({"num_hidden_layers": 3, "use_sliding_window": True, "sliding_window": 4,
                                           "max_window_layers": 0, "layer_types": ["full_attention"] * 2 +
                                           ["sliding_attention"]}) == {"sliding_window": 4, "sliding_window_from_layer": 2}
    assert Qwen2Converter().window_to_uer({"num_hidden_layers": 2, "use_sliding_window": True, "sliding_window": 4,
                                           "max_window_layers": 2}) == {"sliding_window": 0}
    assert MistralConverter().window_to_uer({}) == {"sliding_window": 4096}   # transformers' default
    assert MistralConverter().window_to_uer({"sliding_window": None}) == {"sliding_window": 0}
    windowed = config(sliding_window=4, sliding_window_from_layer=1)
    with pytest.raises(ConfigError, match="sliding_window_from_layer"):
        MistralConverter().check_window(windowed)
    with pytest.raises(ConfigError, match="sliding_window"):
        LlamaConverter().check_window(windowed)
