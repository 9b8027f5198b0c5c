"""DeBERTa-v2/v3 encoder: parity with a small random Hugging Face DebertaV2Model (weights copied),
log-bucket values by hand, bidirectionality, gradients, the shipped configs."""

import dataclasses
import glob
import math
import os

import pytest
import torch

from uer.config import config_from_dict, load_config
from uer.embeddings import Embedding
from uer.encoders.deberta import DebertaEncoder
from uer.layers.relative_position import build_relative_position, make_log_bucket_position
from uer.models import build_model
from uer.registry import ENCODERS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB, HIDDEN, LAYERS, HEADS, FFN, MAX_POS = 100, 32, 2, 2, 64, 512


def our_config(**overrides):
    data = {"embedding": ["word"], "vocab_size": VOCAB, "emb_size": HIDDEN, "hidden_size": HIDDEN,
            "feedforward_size": FFN, "heads_num": HEADS, "layers_num": LAYERS, "max_seq_length": MAX_POS,
            "hidden_act": "gelu", "dropout": 0.0, "encoder": "deberta", "layernorm_eps": 1e-7,
            "target": ["mlm"], "data_processor": "mlm"}
    data.update(overrides)
    return config_from_dict(data)


def copy_from_hf(hf, embedding, encoder):
    """Hugging Face DebertaV2Model parameters -> our embedding + encoder (test-only map)."""
    with torch.no_grad():
        embedding.word.embedding.weight.normal_()
        embedding.word.embedding.weight[:VOCAB] = hf.embeddings.word_embeddings.weight
        embedding.norm.load_state_dict(hf.embeddings.LayerNorm.state_dict())
        encoder.position.embedding.load_state_dict(hf.encoder.rel_embeddings.state_dict())
        encoder.position.norm.load_state_dict(hf.encoder.LayerNorm.state_dict())
        for ours, theirs in zip(encoder.layers, hf.encoder.layer):
            att = theirs.attention
            ours.attention.query.load_state_dict(att.self.query_proj.state_dict())
            ours.attention.key.load_state_dict(att.self.key_proj.state_dict())
            ours.attention.value.load_state_dict(att.self.value_proj.state_dict())
            ours.attention.output.load_state_dict(att.output.dense.state_dict())
            ours.norm_1.load_state_dict(att.output.LayerNorm.state_dict())
            ours.feed_forward.linear_1.load_state_dict(theirs.intermediate.dense.state_dict())
            ours.feed_forward.linear_2.load_state_dict(theirs.output.dense.state_dict())
            ours.norm_2.load_state_dict(theirs.output.LayerNorm.state_dict())


@pytest.mark.parametrize("buckets", [8, 256])
def test_matches_huggingface_deberta_v2_with_padding(buckets):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.DebertaV2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=MAX_POS, relative_attention=True,
        position_buckets=buckets, max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
        share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm", hidden_act="gelu",
        type_vocab_size=0, layer_norm_eps=1e-7, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        initializer_range=0.2)
    hf = transformers.DebertaV2Model(hf_config).eval()
    with torch.no_grad():     # non-trivial norms, so a mis-mapped LayerNorm shows
        for name, p in hf.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))

    config = our_config()
    embedding, encoder = Embedding(config).eval(), ENCODERS.get("deberta")(config, position_buckets=buckets).eval()
    copy_from_hf(hf, embedding, encoder)

    # Length 12 with 8 buckets exercises the logarithmic range (|i - j| > 4).
    src = torch.randint(1, VOCAB, (3, 12))
    lengths = torch.tensor([12, 9, 5])
    keep = torch.arange(12)[None, :] < lengths[:, None]
    src = src.masked_fill(~keep, 0)
    seg = keep.long()
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=keep.long()).last_hidden_state
        ours = encoder(embedding(src, seg), seg)
    diff = (ours - theirs).abs()[keep].max().item()
    print(f"max abs difference vs HF (buckets={buckets}): {diff:.3e}")
    assert diff < 1e-5


def test_log_buckets_hand_computed():
    # 8 buckets (mid 4), max position 512: |r| <= 4 exact, then ceil(log(|r|/4) / log(511/4) * 3) + 4.
    rel = torch.tensor([0, 1, 3, 4, -4, 5, -5, 100, -100, 300])
    assert make_log_bucket_position(rel, 8, 512).tolist() == [0, 1, 3, 4, -4, 5, -5, 6, -6, 7]
    # 256 buckets (mid 128): ceil(log(200/128) / log(511/128) * 127) + 128 = 41 + 128.
    rel = torch.tensor([127, -128, 129, 200, -200])
    assert make_log_bucket_position(rel, 256, 512).tolist() == [127, -128, 129, 169, -169]
    table = build_relative_position(3, 3, 256, 512)
    assert table.tolist() == [[0, -1, -2], [1, 0, -1], [2, 1, 0]]
    assert build_relative_position(2, 3).tolist() == [[0, -1, -2], [1, 0, -1]]


def test_bidirectional_and_padding_invariant():
    torch.manual_seed(0)
    config = our_config()
    encoder = DebertaEncoder(config).eval()
    emb = torch.randn(1, 6, HIDDEN)
    seg = torch.ones(1, 6, dtype=torch.long)
    with torch.no_grad():
        base = encoder(emb, seg)
        later = emb.clone()
        later[:, 5] += 1.0
        changed = encoder(later, seg)
        # a later token changes the first position's output: no causal masking
        assert (changed[:, 0] - base[:, 0]).abs().max() > 1e-4
        # padding keys are ignored: appending pads leaves the real positions unchanged
        padded = encoder(torch.cat([emb, torch.randn(1, 3, HIDDEN)], 1),
                         torch.cat([seg, torch.zeros(1, 3, dtype=torch.long)], 1))
    torch.testing.assert_close(padded[:, :6], base, atol=1e-5, rtol=1e-5)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    config = our_config()
    embedding, encoder = Embedding(config), DebertaEncoder(config)
    src = torch.randint(1, VOCAB, (2, 7))
    seg = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    encoder(embedding(src, seg), seg).pow(2).sum().backward()
    for name, p in list(embedding.named_parameters()) + list(encoder.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    encoder = DebertaEncoder(our_config())
    emb = torch.randn(2, 5, HIDDEN)
    seg = torch.ones(2, 5, dtype=torch.long)
    encoder(emb, seg).sum().backward()
    plain = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    encoder.activation_checkpointing = True
    encoder(emb, seg).sum().backward()
    for a, p in zip(plain, encoder.parameters()):
        torch.testing.assert_close(a, p.grad)


CONFIGS = sorted(glob.glob(os.path.join(ROOT, "models", "deberta_v3", "*.json")))
MLM_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "models", "deberta_v3_mlm", "*.json")))
# DeBERTaV3 paper / microsoft/DeBERTa experiments/language_model/rtd_*.json: layers, hidden, heads, FFN.
SIZES = {"xsmall": (12, 384, 6, 1536), "small": (6, 768, 12, 3072), "base": (12, 768, 12, 3072),
         "large": (24, 1024, 16, 4096)}


def name_of(path):
    return os.path.basename(path)[:-5]


def test_deberta_v3_configs_present():
    assert {os.path.basename(p) for p in CONFIGS} == {"xsmall.json", "small.json", "base.json", "large.json"}
    assert {os.path.basename(p) for p in MLM_CONFIGS} == {os.path.basename(p) for p in CONFIGS}


@pytest.mark.parametrize("path", MLM_CONFIGS, ids=os.path.basename)
def test_deberta_v3_mlm_configs_build(path):
    c = load_config(path, {"vocab_size": 1000})
    assert c.encoder == "deberta" and c.embedding == ["word"] and c.target == ["mlm"] and not c.pretrainer
    assert c.data_processor == "mlm" and c.layernorm_positioning == "post"
    assert (c.layers_num, c.hidden_size, c.heads_num, c.feedforward_size) == SIZES[name_of(path)]
    with torch.device("meta"):
        model = build_model(c)
    assert model.encoder.position.embedding.weight.shape == (512, c.hidden_size)   # 2 x 256 buckets
    assert model.flops_per_token(128) > 0


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_deberta_v3_recipe_configs_build(path):
    """The DeBERTaV3 pretraining recipe: RTD with a same-width, half-depth generator whose MLM uses the
    enhanced mask decoder, GDES, 100% [MASK], RTD weight 50; the export is a plain deberta backbone."""
    from uer.models.electra import ElectraPretrainer
    from uer.tasks.classification import Classifier
    c = load_config(path, {"vocab_size": 1000})
    layers, hidden, heads, ffn = SIZES[name_of(path)]
    assert (c.layers_num, c.hidden_size, c.heads_num, c.feedforward_size) == (layers, hidden, heads, ffn)
    assert c.pretrainer == "electra" and sorted(c.target) == ["mlm", "rtd"] and c.encoder == "deberta"
    assert c.embedding == ["word"] and c.enhanced_mask_decoder and c.emd_layers_num == 2
    assert (c.masking.mask_prob, c.masking.replace_mask, c.masking.replace_random) == (0.15, 1.0, 0.0)
    r = c.rtd
    assert (r.generator, r.generator_size_multiplier, r.generator_layers_num) == ("joint", 1.0, layers // 2)
    assert (r.embedding_sharing, r.disc_weight) == ("gdes", 50.0)
    with torch.device("meta"):
        model = build_model(c)
        fine = dataclasses.replace(c, pretrainer="")
        classifier = Classifier(fine)
    assert isinstance(model, ElectraPretrainer)
    gen, disc = model.generator, model.discriminator
    assert len(gen.encoder.layers) == layers // 2 and gen.config.hidden_size == hidden
    assert gen.target.mlm.decoder.position.weight.shape == (512, hidden)
    assert len(disc.encoder.layers) == layers and "mlm" not in disc.target.names
    backbone = model.discriminator_backbone_state()
    expected = {k: v.shape for k, v in classifier.state_dict().items() if not k.startswith("head.")}
    assert {k: v.shape for k, v in backbone.items()} == expected      # loads strictly for fine-tuning
    assert model.flops_per_token(512) > disc.flops_per_token(512)


def test_deberta_v3_base_discriminator_matches_huggingface_parameter_count():
    """Our exported base discriminator vs transformers.DebertaV2Model with microsoft's rtd_base.json
    discriminator (vocab 128,100): equal up to our vocabulary padding (128,100 -> 128,128 rows)."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.DebertaV2Config(
        vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"], share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm",
        type_vocab_size=0, layer_norm_eps=1e-7)
    with torch.device("meta"):
        hf = transformers.DebertaV2Model(hf_config)
        ours = build_model(load_config(os.path.join(ROOT, "models", "deberta_v3", "base.json"),
                                       {"vocab_size": 128100}))
    hf_count = sum(p.numel() for p in hf.parameters())
    our_count = sum(v.numel() for v in ours.discriminator_backbone_state().values())
    print(f"deberta-v3-base discriminator backbone: ours {our_count:,}, HF {hf_count:,}")
    assert our_count == hf_count + (128128 - 128100) * 768


def test_attention_goes_through_sdpa_with_bias_and_scale(monkeypatch):
    import torch.nn.functional as F
    calls = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    encoder = DebertaEncoder(our_config()).eval()
    seg = torch.tensor([[1] * 4 + [0] * 2])
    with torch.no_grad():
        encoder(torch.randn(1, 6, HIDDEN), seg)
    assert len(calls) == LAYERS
    for kwargs in calls:
        assert kwargs["scale"] == pytest.approx(1 / math.sqrt(3 * HIDDEN // HEADS))
        mask = kwargs["attn_mask"]
        assert mask.dtype == torch.float32 and mask.shape == (1, HEADS, 6, 6)
        assert torch.isinf(mask[..., 4:]).all() and torch.isfinite(mask[..., :4]).all()
