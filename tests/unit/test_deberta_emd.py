"""DeBERTa's enhanced mask decoder (EMD): shapes, EMD off is the old path bit-for-bit, the
selected-positions decoder equals a slow full-sequence reference, gradients, config errors, and a
tiny DeBERTaV3-recipe ELECTRA pretrainer (GDES, half-depth EMD generator, 100% [MASK])."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.layers.masks import build_attention_mask
from uer.models import build_model
from uer.models.electra import ElectraPretrainer
from uer.models.weights import load_weights
from uer.tasks.classification import Classifier

VOCAB, HIDDEN, HEADS, FFN = 100, 32, 2, 64
MASK_ID = 4


def config(**overrides):
    data = {"embedding": ["word"], "vocab_size": VOCAB, "emb_size": HIDDEN, "hidden_size": HIDDEN,
            "feedforward_size": FFN, "heads_num": HEADS, "layers_num": 3, "max_seq_length": 64,
            "dropout": 0.0, "encoder": "deberta", "layernorm_eps": 1e-7, "target": ["mlm"],
            "enhanced_mask_decoder": True}
    data.update(overrides)
    return config_from_dict(data)


def batch(seed=0, length=12):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(5, VOCAB, (3, length), generator=g)
    seg = torch.ones(3, length, dtype=torch.long)
    seg[1, 9:] = 0                                     # padding, seen only through the key mask
    seg[2, 5:] = 0
    positions = torch.tensor([[0, 6, 11], [2, 3, 8], [1, 4, 4]])
    labels = src.gather(1, positions)
    labels[2, 2] = -100                                # an unused slot (repeats a position)
    src = src.scatter(1, positions, MASK_ID)
    return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels}


def heads(x, n):
    b, length, _ = x.shape
    return x.view(b, length, n, -1).transpose(1, 2)


def reference_emd(model, src, seg, positions):
    """Slow reference, straight from the description: every encoder layer but the last gives H; the
    last layer is re-run over ALL positions with queries I = H + P (then the previous pass's output)
    and keys/values H, with the full-sequence disentangled bias; the selected rows are picked last."""
    encoder, decoder = model.encoder, model.target.mlm.decoder
    mask = build_attention_mask(model.config.mask, seg)
    x = model.embedding(src, seg)
    for layer in encoder.layers[:-1]:
        x = layer(x, mask, encoder.position)
    hidden, layer = x, encoder.layers[-1]
    att, pre = layer.attention, layer.pre_norm
    query = hidden + decoder.position.weight[: src.size(1)]
    context = layer.norm_1(hidden) if pre else hidden
    k, v = heads(att.key(context), HEADS), heads(att.value(context), HEADS)
    for _ in range(decoder.layers_num):
        q = heads(att.query(layer.norm_1(query) if pre else query), HEADS)
        bias = encoder.position.qk_bias(q, k, att)
        if mask.attn_mask is not None:
            bias = bias.masked_fill(~mask.attn_mask, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           scale=encoder.position.softmax_scale(att.head_size))
        y = att.output(y.transpose(1, 2).reshape(src.size(0), src.size(1), -1))
        if pre:
            mid = query + y
            query = mid + layer.feed_forward(layer.norm_2(mid))
        else:
            mid = layer.norm_1(query + y)
            query = layer.norm_2(mid + layer.feed_forward(mid))
    if encoder.final_norm is not None:
        query = encoder.final_norm(query)
    return query.gather(1, positions.unsqueeze(-1).expand(-1, -1, HIDDEN))


def test_shapes_and_parameters():
    torch.manual_seed(0)
    model = build_model(config()).eval()
    head = model.target.mlm
    assert head.decoder is not None and head.decoder.position.weight.shape == (64, HIDDEN)
    # the decoder owns only the absolute table; the re-run layer stays the encoder's
    assert [n for n, _ in head.decoder.named_parameters()] == ["position.weight"]
    b = batch()
    with torch.no_grad():
        hidden = model.encode(b["src"], b["seg"])
        assert hidden.shape == (3, 12, HIDDEN)
        logits = head.logits(hidden, b["mlm_positions"])
        out = model(b)
    assert logits.shape == (3, 3, VOCAB)
    assert set(out) == {"loss", "mlm_loss", "mlm_acc"} and torch.isfinite(out["loss"])
    assert model.encoder.last_layer_input is None        # handed over, nothing held after the step
    assert model.flops_per_token(128) > build_model(config(enhanced_mask_decoder=False)).flops_per_token(128)


def test_emd_off_is_the_plain_head_bit_for_bit():
    torch.manual_seed(0)
    off = build_model(config(enhanced_mask_decoder=False)).eval()
    torch.manual_seed(0)
    default = build_model(config_from_dict({k: v for k, v in dataclasses.asdict(config()).items()
                                            if k not in ("enhanced_mask_decoder", "emd_layers_num")})).eval()
    assert off.target.mlm.decoder is None
    assert not any("decoder" in k for k in off.state_dict())
    assert off.state_dict().keys() == default.state_dict().keys()
    for key, value in off.state_dict().items():
        assert torch.equal(value, default.state_dict()[key]), key
    b = batch()
    with torch.no_grad():
        hidden = off.encode(b["src"], b["seg"])
        assert off.encoder.last_layer_input is None      # no decoder bound: nothing captured
        head = off.target.mlm
        picked = hidden.gather(1, b["mlm_positions"].unsqueeze(-1).expand(-1, -1, HIDDEN))
        by_hand = F.linear(head.norm(head.act(head.linear_1(picked))), off.embedding.word_weight(),
                           head.output_bias)[..., :VOCAB]
        assert torch.equal(head.logits(hidden, b["mlm_positions"]), by_hand)
        assert torch.equal(off(b)["loss"], default(b)["loss"])


@pytest.mark.parametrize("layers,emd_layers,buckets,extra", [
    (3, 2, 256, {}), (2, 1, 8, {}), (1, 3, 8, {}),
    (2, 2, 8, {"layernorm_positioning": "pre"}),        # pre-LN layer and the encoder's final norm
    (2, 2, 256, {"mask": "causal_with_prefix"}),        # a per-query-row mask, gathered at the positions
], ids=["v3", "one-pass", "one-layer", "pre-ln", "prefix-mask"])
def test_selected_positions_match_full_sequence_reference(layers, emd_layers, buckets, extra):
    torch.manual_seed(0)
    c = config(layers_num=layers, emd_layers_num=emd_layers, **extra)
    model = build_model(c).eval()
    if buckets != 256:                        # 8 buckets: length 12 reaches the logarithmic range
        model.encoder.position.position_buckets = buckets
    with torch.no_grad():                     # non-trivial norms and positions, so mix-ups show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
        model.target.mlm.decoder.position.weight.mul_(20)
    b = batch()
    if extra.get("mask") == "causal_with_prefix":      # a causal second segment: rows differ by position
        b["seg"][0, 6:] = 2
        b["seg"][1, 4:9] = 2
    with torch.no_grad():
        model.encode(b["src"], b["seg"])
        fast = model.target.mlm.decoder(b["mlm_positions"])
        slow = reference_emd(model, b["src"], b["seg"], b["mlm_positions"])
        plain = model.encode(b["src"], b["seg"]).gather(1, b["mlm_positions"].unsqueeze(-1).expand(-1, -1, HIDDEN))
    diff = (fast - slow).abs().max().item()
    print(f"EMD selected vs full-sequence reference (layers={layers}, passes={emd_layers}): {diff:.2e}")
    assert diff < 1e-5
    assert (fast - plain).abs().max() > 1e-2      # the decoder changes what the head sees


def test_gradient_reaches_last_layer_and_position_table():
    torch.manual_seed(0)
    model = build_model(config())
    b = batch()
    model.encode(b["src"], b["seg"])
    model.target.mlm.decoder(b["mlm_positions"]).pow(2).sum().backward()   # the decoder path alone
    table = model.target.mlm.decoder.position.weight.grad
    used = torch.zeros(64, dtype=torch.bool)
    used[b["mlm_positions"].flatten()] = True
    assert table[used].abs().sum(-1).gt(0).all() and torch.count_nonzero(table[~used]) == 0
    for name, p in model.encoder.layers[-1].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.encoder.position.embedding.weight.grad.abs().sum() > 0   # shared relative table
    assert model.encoder.layers[0].attention.query.weight.grad.abs().sum() > 0   # through H


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = build_model(config())
    b = batch()
    model(b)["loss"].backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.encoder.activation_checkpointing = True
    model(b)["loss"].backward()
    assert model.encoder.last_layer_input is None     # the backward re-run captured nothing
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], msg=n)


@pytest.mark.parametrize("overrides,message", [
    ({"encoder": "transformer"}, "re-runs the last layer of a \"deberta\" encoder"),
    ({"target": ["lm"], "mask": "causal"}, "feeds the 'mlm' target"),
    ({"emd_layers_num": 0}, "'emd_layers_num': must be ≥ 1"),
    ({"target": ["mlm", "rtd"], "pretrainer": "electra", "rtd": {"generator": "unigram", "embedding_sharing": "none"}},
     "applies to the generator trained alongside"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(**overrides)


def recipe_config():
    """A tiny DeBERTaV3 recipe: deberta discriminator, same-width half-depth EMD generator, GDES,
    100% [MASK]."""
    c = config_from_dict({
        "embedding": ["word"], "emb_size": HIDDEN, "hidden_size": HIDDEN, "feedforward_size": FFN,
        "heads_num": HEADS, "layers_num": 2, "max_seq_length": 32, "dropout": 0.0, "encoder": "deberta",
        "layernorm_eps": 1e-7, "target": ["mlm", "rtd"], "pretrainer": "electra",
        "enhanced_mask_decoder": True, "masking": {"mask_prob": 0.15, "replace_mask": 1.0, "replace_random": 0.0},
        "rtd": {"generator": "joint", "generator_size_multiplier": 1.0, "generator_layers_num": 1,
                "embedding_sharing": "gdes", "disc_weight": 50.0}})
    c.vocab_size = VOCAB
    return c


def test_deberta_v3_recipe_trains_and_exports_a_plain_backbone():
    torch.manual_seed(0)
    c = recipe_config()
    model = build_model(c)
    assert isinstance(model, ElectraPretrainer)
    gen, disc = model.generator, model.discriminator
    assert len(gen.encoder.layers) == 1 and gen.config.hidden_size == HIDDEN
    assert gen.target.mlm.decoder is not None and "mlm" not in disc.target.names
    b = batch(length=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = model(b)
        optimizer.zero_grad()
        out["loss"].backward()
        assert gen.target.mlm.decoder.position.weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append((out["loss"].item(), out["mlm_loss"].item(), out["rtd_loss"].item()))
    print("recipe losses (total, mlm, rtd):", [tuple(round(x, 3) for x in step) for step in losses])
    (total_0, mlm_0, rtd_0), (total_n, mlm_n, rtd_n) = losses[0], losses[-1]
    assert total_n < 0.85 * total_0 and mlm_n < 0.8 * mlm_0 and rtd_n < rtd_0

    state = model.discriminator_backbone_state()
    assert not any("decoder" in k or k.startswith("target.") for k in state)
    fine = dataclasses.replace(c, pretrainer="", target=["mlm"], enhanced_mask_decoder=False, labels_num=3)
    classifier = Classifier(fine)
    load_weights(classifier, state, allow_missing=("head.",))       # strict for embedding + encoder
    for key, value in state.items():
        assert torch.equal(classifier.state_dict()[key], value), key
    with torch.no_grad():
        assert classifier.logits(b["src"], b["seg"]).shape == (3, 3)
    # the saved config keeps enhanced_mask_decoder; fine-tuning builds a plain backbone from it too
    classifier_same_config = Classifier(dataclasses.replace(c, pretrainer="", labels_num=3))
    load_weights(classifier_same_config, state, allow_missing=("head.",))


def test_recipe_config_pretrains_and_finetunes_through_the_cli(tiny_corpus, tmp_path):
    """The shipped xsmall recipe, shrunk: pretrain.py trains the EMD generator + discriminator and
    classifier fine-tuning loads the exported discriminator strictly (load_weights raises on a mismatch)."""
    import json
    import os

    from uer.cli.classifier import finetune_main
    from uer.cli.preprocess import main as preprocess_main
    from uer.cli.pretrain import main as pretrain_main
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    recipe = json.load(open(os.path.join(root, "models", "deberta_v3", "xsmall.json")))
    recipe.update(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=2, layers_num=2, max_seq_length=64)
    recipe["rtd"]["generator_layers_num"] = 1
    config_path = tmp_path / "deberta_v3_tiny.json"
    config_path.write_text(json.dumps(recipe))
    vocab, dataset = str(tiny_corpus / "vocab.txt"), str(tmp_path / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--seq_length", "32", "--data_processor", "mlm"])
    model = str(tmp_path / "deberta_v3.bin")
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(config_path),
                   "--output_model_path", model, "--total_steps", "4", "--batch_size", "8",
                   "--num_workers", "0", "--report_steps", "1", "--learning_rate", "1e-3"])
    records = [json.loads(line) for line in open(model + ".metrics.jsonl")]
    assert {"mlm_loss", "rtd_loss", "replaced_frac"} <= set(records[-1])
    results = finetune_main(["--pretrained_model_path", model, "--vocab_path", vocab,
                             "--train_path", str(tiny_corpus / "dev.tsv"), "--dev_path", str(tiny_corpus / "dev.tsv"),
                             "--output_model_path", str(tmp_path / "cls.bin"), "--epochs_num", "1",
                             "--batch_size", "16", "--seq_length", "32"])
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0
