"""Embeddings, the transformer encoder, targets and the assembled Model, on tiny configs."""

import math

import pytest
import torch
import torch.nn.functional as F

from uer.config import config_from_dict
from uer.embeddings import Embedding
from uer.embeddings.position import PositionEmbedding, SinusoidalPositionEmbedding
from uer.encoders.transformer import TransformerEncoder, TransformerLayer
from uer.errors import ConfigError
from uer.models import Model, build_backbone, build_model, init_weights
from uer.targets import TargetSet
from uer.targets.metrics import accuracy

VOCAB = 200   # padded to 256

BERT = {"embedding": ["word", "pos", "seg"], "vocab_size": VOCAB, "emb_size": 32, "hidden_size": 32,
        "feedforward_size": 64, "heads_num": 4, "layers_num": 2, "max_seq_length": 16,
        "hidden_act": "gelu", "dropout": 0.0, "mask": "fully_visible", "layernorm_positioning": "post",
        "target": ["mlm", "sp"], "tie_weights": True}
GPT = {**BERT, "embedding": ["word", "pos"], "remove_embedding_layernorm": True, "mask": "causal",
       "layernorm_positioning": "pre", "layernorm_eps": 1e-5, "target": ["lm"], "hidden_act": "gelu_fast"}
ALBERT = {**BERT, "emb_size": 16, "factorized_embedding_parameterization": True, "parameter_sharing": True,
          "layers_num": 3, "hidden_act": "gelu_fast"}


def cfg(base, **kw):
    return config_from_dict({**base, **kw}, "test")


def seeded_model(config, seed=0):
    torch.manual_seed(seed)
    return build_model(config)


def bert_batch(batch=3, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, VOCAB, (batch, length), generator=g)
    seg = torch.ones(batch, length, dtype=torch.long)
    seg[:, length // 2:] = 2
    seg[1, -3:] = 0          # padding
    src[seg == 0] = 0
    positions = torch.tensor([[1, 3, 6], [2, 4, 0], [0, 5, 8]])[:batch]
    labels = torch.randint(5, VOCAB, positions.shape, generator=g)
    labels[1, 2] = -100      # unused slot
    return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels,
            "sp_labels": torch.tensor([0, 1, 1])[:batch]}


def gpt_batch(batch=2, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, VOCAB, (batch, length), generator=g)
    seg = torch.ones(batch, length, dtype=torch.long)
    seg[1, -2:] = 0
    labels = torch.randint(5, VOCAB, (batch, length), generator=g)
    labels[seg == 0] = -100
    return {"src": src, "seg": seg, "lm_labels": labels}


# ---------------------------------------------------------------------- embeddings

def test_embedding_sums_parts_then_norm():
    torch.manual_seed(0)
    c = cfg(BERT)
    emb = Embedding(c).eval()
    src = torch.tensor([[5, 6, 7, 0]])
    seg = torch.tensor([[1, 1, 2, 0]])
    parts = (emb.word.embedding.weight[src] + emb.pos.embedding.weight[:4].unsqueeze(0)
             + emb.seg.embedding.weight[seg])
    expected = F.layer_norm(parts, (32,), emb.norm.weight, emb.norm.bias, c.layernorm_eps)
    torch.testing.assert_close(emb(src, seg), expected)
    assert emb.names == ["word", "pos", "seg"]
    assert emb.word_weight() is emb.word.embedding.weight


def test_remove_embedding_layernorm():
    torch.manual_seed(0)
    emb = Embedding(cfg(GPT)).eval()
    assert emb.norm is None
    assert not any("norm" in n for n, _ in emb.named_parameters())
    src = torch.tensor([[5, 6, 7]])
    expected = emb.word.embedding.weight[src] + emb.pos.embedding.weight[:3]
    torch.testing.assert_close(emb(src, torch.ones_like(src)), expected)


def test_rms_embedding_norm():
    from uer.layers.norms import RMSNorm
    assert isinstance(Embedding(cfg(BERT, layernorm="rms")).norm, RMSNorm)


def test_padded_vocab_rows_multiple_of_64():
    for vocab, rows in [(200, 256), (64, 64), (65, 128), (1000, 1024)]:
        emb = Embedding(cfg(BERT, vocab_size=vocab))
        assert emb.word_weight().shape == (rows, 32)


def test_pos_embedding_raises_beyond_max_seq_length():
    pos = PositionEmbedding(cfg(BERT))
    assert pos(torch.zeros(1, 16, dtype=torch.long), None).shape == (1, 16, 32)
    with pytest.raises(ValueError, match="max_seq_length 16"):
        pos(torch.zeros(1, 17, dtype=torch.long), None)


def test_sinusoidal_values_at_known_positions():
    c = cfg(BERT, embedding=["word", "sinusoidalpos"], emb_size=8, hidden_size=8, heads_num=2)
    sin = SinusoidalPositionEmbedding(c)
    assert list(sin.parameters()) == [] and "table" not in sin.state_dict()
    out = sin(torch.zeros(1, 5, dtype=torch.long), None)[0]
    assert out.shape == (5, 8)
    # position 0: sin(0)=0 on even dims, cos(0)=1 on odd dims
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0] * 4))
    pos, dim = 3, 8
    expected = []
    for i in range(dim // 2):
        angle = pos / (10000 ** (2 * i / dim))
        expected += [math.sin(angle), math.cos(angle)]
    torch.testing.assert_close(out[pos], torch.tensor(expected), atol=1e-6, rtol=1e-6)


def test_sinusoidal_odd_dimension():
    c = cfg(BERT, embedding=["word", "sinusoidalpos"], emb_size=7, hidden_size=7, heads_num=1)
    table = SinusoidalPositionEmbedding(c).table
    assert table.shape == (16, 7)
    torch.testing.assert_close(table[2, 6], torch.tensor(math.sin(2 / 10000 ** (6 / 7))))


def test_sinusoidal_raises_clearly_beyond_max_seq_length():
    c = cfg(BERT, embedding=["word", "sinusoidalpos"])
    emb = Embedding(c)
    src = torch.zeros(1, 20, dtype=torch.long)
    with pytest.raises(ValueError, match="max_seq_length"):
        emb(src, torch.ones_like(src))


def test_segment_embedding_three_rows():
    emb = Embedding(cfg(BERT))
    assert emb.seg.embedding.weight.shape == (3, 32)


# ---------------------------------------------------------------------- encoder

def encoder_out(config, seed=0):
    torch.manual_seed(seed)
    enc = TransformerEncoder(config).eval()
    torch.manual_seed(123)
    x = torch.randn(2, 6, config.emb_size)
    seg = torch.tensor([[1, 1, 1, 2, 2, 2], [1, 1, 2, 2, 0, 0]])
    return enc, enc(x, seg)


def test_pre_vs_post_layernorm():
    post, out_post = encoder_out(cfg(BERT))
    pre, out_pre = encoder_out(cfg(BERT, layernorm_positioning="pre"))
    assert post.final_norm is None and isinstance(pre.final_norm, torch.nn.LayerNorm)
    assert out_post.shape == out_pre.shape == (2, 6, 32)
    assert not torch.allclose(out_post, out_pre, atol=1e-3)
    # post-LN: every layer ends in a LayerNorm, so each output row is normalised
    torch.testing.assert_close(out_post.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    # the layers' parameters are the same up to the extra final norm
    n_post = sum(p.numel() for p in post.parameters())
    n_pre = sum(p.numel() for p in pre.parameters())
    assert n_pre - n_post == 2 * 32


def test_transformer_layer_post_and_pre_formulas():
    from uer.layers.masks import AttentionMask
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    mask = AttentionMask(None)
    layer = TransformerLayer(cfg(BERT)).eval()
    h = layer.norm_1(x + layer.attention(x, mask))
    torch.testing.assert_close(layer(x, mask), layer.norm_2(h + layer.feed_forward(h)))
    layer = TransformerLayer(cfg(BERT, layernorm_positioning="pre")).eval()
    h = x + layer.attention(layer.norm_1(x), mask)
    torch.testing.assert_close(layer(x, mask), h + layer.feed_forward(layer.norm_2(h)))


def test_parameter_sharing_albert():
    shared = TransformerEncoder(cfg(ALBERT))
    unshared = TransformerEncoder(cfg(ALBERT, parameter_sharing=False))
    assert len(shared.layers) == 1 and len(unshared.layers) == 3
    per_layer = sum(p.numel() for p in unshared.layers[0].parameters())
    assert sum(p.numel() for p in unshared.layers.parameters()) == 3 * per_layer
    assert sum(p.numel() for p in shared.layers.parameters()) == per_layer

    calls = []
    handle = shared.layers[0].register_forward_hook(lambda m, i, o: calls.append(id(m)))
    shared(torch.randn(1, 4, 16), torch.ones(1, 4, dtype=torch.long))
    handle.remove()
    assert calls == [id(shared.layers[0])] * 3


def test_factorized_projection():
    enc = TransformerEncoder(cfg(ALBERT))
    assert enc.linear is not None and enc.linear.weight.shape == (32, 16)
    out = enc(torch.randn(2, 4, 16), torch.ones(2, 4, dtype=torch.long))
    assert out.shape == (2, 4, 32)
    assert TransformerEncoder(cfg(BERT)).linear is None


def test_gated_rms_no_bias_encoder():
    c = cfg(BERT, feed_forward="gated", layernorm="rms", remove_transformer_bias=True,
            layernorm_positioning="pre")
    enc = TransformerEncoder(c)
    assert not any(n.endswith("bias") for n, _ in enc.named_parameters())
    assert hasattr(enc.layers[0].feed_forward, "linear_gate")
    assert enc(torch.randn(1, 3, 32), torch.ones(1, 3, dtype=torch.long)).shape == (1, 3, 32)


@pytest.mark.parametrize("base,batch_fn", [(BERT, bert_batch), (GPT, gpt_batch), (ALBERT, bert_batch)],
                         ids=["bert", "gpt", "albert"])
def test_gradient_reaches_every_parameter(base, batch_fn):
    model = seeded_model(cfg(base))
    model.train()
    out = model(batch_fn())
    out["loss"].backward()
    names = [n for n, _ in model.named_parameters()]
    assert names, "no parameters"
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not bool((p.grad != 0).any())]
    assert no_grad == []


def test_activation_checkpointing_same_outputs_and_gradients():
    def run(checkpointing):
        model = seeded_model(cfg(BERT))
        model.train()
        model.encoder.activation_checkpointing = checkpointing
        out = model(bert_batch())
        out["loss"].backward()
        return out["loss"].detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_a, grads_a = run(False)
    loss_b, grads_b = run(True)
    torch.testing.assert_close(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5, msg=name)


def test_activation_checkpointing_is_used_only_in_training(monkeypatch):
    import uer.encoders.transformer as tr
    calls = []
    real = tr.checkpoint

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "checkpoint", spy)
    enc = TransformerEncoder(cfg(BERT))
    enc.activation_checkpointing = True
    x, seg = torch.randn(1, 4, 32), torch.ones(1, 4, dtype=torch.long)
    enc.eval()
    enc(x, seg)
    assert calls == []
    enc.train()
    enc(x, seg)
    assert len(calls) == 2


def test_encoder_padding_does_not_leak_into_real_positions():
    torch.manual_seed(0)
    enc = TransformerEncoder(cfg(BERT)).eval()
    seg = torch.tensor([[1, 1, 2, 2, 0, 0]])
    x = torch.randn(1, 6, 32)
    x2 = x.clone()
    x2[0, 4:] = torch.randn(2, 32) * 10
    torch.testing.assert_close(enc(x, seg)[0, :4], enc(x2, seg)[0, :4], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- targets

def test_mlm_logits_only_at_selected_positions():
    model = seeded_model(cfg(BERT, target=["mlm"]))
    mlm = model.target.mlm
    torch.manual_seed(1)
    hidden = torch.randn(3, 10, 32)
    batch = bert_batch()
    logits = mlm.logits(hidden, batch["mlm_positions"])
    assert logits.shape == (3, 3, VOCAB)
    loss = mlm(hidden, batch)["loss"]
    selected = torch.zeros(3, 10, dtype=torch.bool)
    selected.scatter_(1, batch["mlm_positions"], True)
    hidden2 = hidden.clone()
    hidden2[~selected] = torch.randn(int((~selected).sum()), 32) * 10
    assert torch.equal(mlm(hidden2, batch)["loss"], loss)
    # and it does change when a selected position changes
    hidden3 = hidden.clone()
    hidden3[0, 1] += 5
    assert not torch.equal(mlm(hidden3, batch)["loss"], loss)


def test_mlm_loss_formula_and_ignored_slots():
    model = seeded_model(cfg(BERT, target=["mlm"]))
    mlm = model.target.mlm
    torch.manual_seed(2)
    hidden = torch.randn(3, 10, 32)
    batch = bert_batch()
    pos = batch["mlm_positions"]
    picked = hidden[torch.arange(3)[:, None], pos]
    h = F.layer_norm(F.gelu(mlm.linear_1(picked)), (32,), mlm.norm.weight, mlm.norm.bias, 1e-12)
    logits = (h @ model.embedding.word_weight().T + mlm.output_bias)[..., :VOCAB]
    labels = batch["mlm_labels"]
    valid = labels != -100
    expected = F.cross_entropy(logits[valid], labels[valid])
    out = mlm(hidden, batch)
    torch.testing.assert_close(out["loss"], expected, atol=1e-5, rtol=1e-5)
    assert set(out) == {"loss", "mlm_loss", "mlm_acc"}
    assert not out["mlm_loss"].requires_grad
    # changing the hidden state at an ignored slot's position (row 1 slot 2 -> position 0) is harmless
    # as long as no real slot points there
    hidden2 = hidden.clone()
    hidden2[1, 0] += 7
    torch.testing.assert_close(mlm(hidden2, batch)["loss"], out["loss"])


def test_mlm_tied_weights_share_storage():
    model = seeded_model(cfg(BERT))
    mlm = model.target.mlm
    assert mlm.output_weight_tensor().data_ptr() == model.embedding.word_weight().data_ptr()
    keys = list(model.state_dict())
    assert not any(k.startswith("target.mlm.output_weight") for k in keys)
    assert "target.mlm.output_bias" in keys
    # the embedding table is counted once among the parameters
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(ptrs) == len(set(ptrs))


def test_mlm_untied_has_its_own_weight():
    model = seeded_model(cfg(BERT, tie_weights=False))
    mlm = model.target.mlm
    assert mlm.output_weight.shape == (256, 32)
    assert mlm.output_weight_tensor().data_ptr() != model.embedding.word_weight().data_ptr()
    assert "target.mlm.output_weight" in model.state_dict()
    n_tied = sum(p.numel() for p in seeded_model(cfg(BERT)).parameters())
    assert sum(p.numel() for p in model.parameters()) - n_tied == 256 * 32


def test_mlm_factorized_tied_uses_emb_size():
    model = seeded_model(cfg(ALBERT))
    mlm = model.target.mlm
    assert mlm.linear_1.weight.shape == (16, 32)
    assert mlm.output_weight_tensor().shape == (256, 16)
    assert mlm.output_weight_tensor().data_ptr() == model.embedding.word_weight().data_ptr()


def test_mlm_accuracy_on_constructed_case():
    model = seeded_model(cfg(BERT, target=["mlm"]))
    mlm = model.target.mlm
    torch.manual_seed(3)
    hidden = torch.randn(2, 6, 32)
    positions = torch.tensor([[0, 1, 2], [3, 4, 5]])
    pred = mlm.logits(hidden, positions).argmax(-1)
    labels = pred.clone()
    labels[0, 1] = (pred[0, 1] + 1) % VOCAB      # wrong
    labels[1, 0] = (pred[1, 0] + 1) % VOCAB      # wrong
    labels[1, 2] = -100                          # ignored
    out = mlm(hidden, {"mlm_positions": positions, "mlm_labels": labels})
    assert out["mlm_acc"].item() == pytest.approx(3 / 5)


def test_accuracy_helper():
    logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    assert accuracy(logits, torch.tensor([[1, 1, -100]])).item() == pytest.approx(0.5)
    assert accuracy(logits, torch.tensor([[-100, -100, -100]])).item() == 0.0


def test_sp_target():
    model = seeded_model(cfg(BERT, target=["sp"]))
    sp = model.target.sp
    torch.manual_seed(4)
    hidden = torch.randn(3, 5, 32)
    labels = torch.tensor([0, 1, 0])
    out = sp(hidden, {"sp_labels": labels})
    logits = sp.linear_2(torch.tanh(sp.linear_1(hidden[:, 0])))
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits, labels))
    assert set(out) == {"loss", "sp_loss", "sp_acc"}
    assert out["sp_acc"].item() == pytest.approx(((logits.argmax(-1) == labels).float().mean()).item())
    # only [CLS] matters
    hidden2 = hidden.clone()
    hidden2[:, 1:] = 0
    torch.testing.assert_close(sp(hidden2, {"sp_labels": labels})["loss"], out["loss"])


def test_cls_target_uses_pooling_and_labels_num():
    model = seeded_model(cfg(BERT, target=["cls"], labels_num=4, pooling="mean"))
    cls = model.target.cls
    assert cls.head.linear_2.out_features == 4
    torch.manual_seed(5)
    hidden = torch.randn(2, 5, 32)
    seg = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    labels = torch.tensor([3, 1])
    out = cls(hidden, {"seg": seg, "cls_labels": labels})
    pooled = torch.stack([hidden[0, :3].mean(0), hidden[1].mean(0)])
    logits = cls.head.linear_2(torch.tanh(cls.head.linear_1(pooled)))
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits, labels), atol=1e-6, rtol=1e-5)
    assert set(out) == {"loss", "cls_loss", "cls_acc"}


def test_lm_target_loss_equals_manual_cross_entropy():
    model = seeded_model(cfg(GPT))
    lm = model.target.lm
    assert lm.tied and lm.output_bias is None
    torch.manual_seed(6)
    hidden = torch.randn(2, 10, 32)
    batch = gpt_batch()
    out = lm(hidden, batch)
    logits = hidden @ model.embedding.word_weight()[:VOCAB].T
    labels = batch["lm_labels"]
    valid = labels != -100
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits[valid], labels[valid]),
                               atol=1e-5, rtol=1e-5)
    assert lm.logits(hidden).shape == (2, 10, VOCAB)
    assert set(out) == {"loss", "lm_loss", "lm_acc"}
    acc = ((logits.argmax(-1) == labels) & valid).sum() / valid.sum()
    assert out["lm_acc"].item() == pytest.approx(acc.item())


def test_lm_target_bias_and_untied():
    model = seeded_model(cfg(GPT, has_lmtarget_bias=True, tie_weights=False))
    lm = model.target.lm
    assert not lm.tied
    assert lm.output_weight.shape == (256, 32) and lm.output_bias.shape == (256,)
    assert "target.lm.output_weight" in model.state_dict()
    assert lm.output_weight.data_ptr() != model.embedding.word_weight().data_ptr()
    tied = seeded_model(cfg(GPT))
    assert "target.lm.output_weight" not in tied.state_dict()
    assert tied.target.lm.logits(torch.randn(1, 2, 32)).shape == (1, 2, VOCAB)


def test_target_set_sums_losses_and_passes_metrics():
    model = seeded_model(cfg(BERT))
    torch.manual_seed(7)
    hidden = torch.randn(3, 10, 32)
    batch = bert_batch()
    out = model.target(hidden, batch)
    mlm = model.target.mlm(hidden, batch)
    sp = model.target.sp(hidden, batch)
    torch.testing.assert_close(out["loss"], mlm["loss"] + sp["loss"])
    assert set(out) == {"loss", "mlm_loss", "mlm_acc", "sp_loss", "sp_acc"}
    torch.testing.assert_close(out["mlm_acc"], mlm["mlm_acc"])
    torch.testing.assert_close(out["sp_loss"], sp["sp_loss"])
    assert isinstance(model.target, TargetSet) and model.target.names == ["mlm", "sp"]


# ---------------------------------------------------------------------- model

def test_model_forward_returns_loss_and_metrics():
    model = seeded_model(cfg(BERT))
    out = model(bert_batch())
    assert set(out) == {"loss", "mlm_loss", "mlm_acc", "sp_loss", "sp_acc"}
    assert out["loss"].dim() == 0 and out["loss"].requires_grad and torch.isfinite(out["loss"])
    # at init the MLM loss is about log(vocab)
    assert abs(out["mlm_loss"].item() - math.log(VOCAB)) < 1.0
    torch.testing.assert_close(out["loss"].detach(), out["mlm_loss"] + out["sp_loss"])
    assert 0.0 <= out["mlm_acc"].item() <= 1.0


def test_model_encode_shape_and_without_target():
    model = build_model(cfg(BERT), with_target=False)
    assert model.target is None
    assert not any(n.startswith("target") for n in model.state_dict())
    batch = bert_batch()
    assert model.encode(batch["src"], batch["seg"]).shape == (3, 10, 32)


def test_init_weights():
    model = seeded_model(cfg(BERT, hidden_size=64, emb_size=64, feedforward_size=256))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert bool((p == 0).all()), name
        elif "norm" in name:
            assert bool((p == 1).all()), name
    w = model.encoder.layers[0].feed_forward.linear_1.weight
    assert abs(w.std().item() - 0.02) < 0.003
    emb = model.embedding.word_weight()
    assert abs(emb.std().item() - 0.02) < 0.003
    lin = torch.nn.Linear(4, 4)
    init_weights(lin, std=0.5)
    assert bool((lin.bias == 0).all())


def test_flops_per_token():
    c = cfg(BERT)
    model = build_model(c)
    f128, f256 = model.flops_per_token(8), model.flops_per_token(16)
    assert 0 < f128 < f256
    # attention term: 12 * layers * hidden * seq_len
    assert f256 - f128 == pytest.approx(12 * 2 * 32 * 8)
    # dense term: 6 x (the 2-D parameters of the layers); heads: mlm at 15 %, sp free
    per_layer = 4 * 32 * 32 + 2 * 32 * 64
    mlm = 6 * (32 * 32 + 32 * 256) * 0.15
    assert f128 == pytest.approx(6 * 2 * per_layer + 12 * 2 * 32 * 8 + mlm)
    assert model.flops_per_token(8, predicted_fraction=0.3) > f128
    # shared layers still count every use
    albert = build_model(cfg(ALBERT))
    per_layer = 4 * 32 * 32 + 2 * 32 * 64
    assert albert.encoder.matmul_params_per_token() == 3 * per_layer + 16 * 32


def test_build_fails_clearly_without_vocab_size():
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(cfg(BERT, vocab_size=0))
    with pytest.raises(ConfigError, match="vocab"):
        build_backbone(cfg(BERT, vocab_size=0))


def test_model_is_deterministic_in_eval_and_sees_dropout_in_train():
    model = seeded_model(cfg(BERT, dropout=0.3))
    batch = bert_batch()
    model.eval()
    with torch.no_grad():
        a, b = model(batch)["loss"], model(batch)["loss"]
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        c, d = model(batch)["loss"], model(batch)["loss"]
    assert not torch.equal(c, d)


def test_causal_model_prediction_does_not_see_the_future():
    model = seeded_model(cfg(GPT)).eval()
    src = torch.randint(5, VOCAB, (1, 8))
    seg = torch.ones_like(src)
    h = model.encode(src, seg)
    src2 = src.clone()
    src2[0, 5:] = (src2[0, 5:] + 1) % VOCAB
    h2 = model.encode(src2, seg)
    assert torch.equal(h[:, :5], h2[:, :5])
    assert not torch.allclose(h[:, 5], h2[:, 5])


def test_model_class_is_build_model_result():
    assert isinstance(build_model(cfg(GPT)), Model)
