"""METRO-style RTD on an encoder-decoder (uer/models/metro.py): RTD labels, sentinels and specials never
selected, the decoder loss equal to a plain T5's when nothing is replaced, gradients, sharing, config
checks, the shipped config's parameter count and the exported encoder-decoder."""

import json
import os

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig, config_from_dict, load_config
from uer.data.collator import PretrainCollator
from uer.data.noising import T5Noiser
from uer.data.vocab import Vocab
from uer.errors import ConfigError
from uer.models import Model, build_model
from uer.models.metro import MetroPretrainer, seq2seq_config
from uer.models.pretrained import backbone_config, backbone_source
from uer.models.weights import load_weights, save_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRO_BASE = os.path.join(ROOT, "models", "metro", "t5_base.json")
TINY = dict(emb_size=48, hidden_size=48, feedforward_size=96, heads_num=6, attention_head_size=8, layers_num=2,
            decoder_layers_num=2, max_seq_length=64, dropout=0.0)
WORDS = [f"w{i}" for i in range(90)]
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [f"[extra_id_{i}]" for i in range(20)]
VOCAB = Vocab(TOKENS)
MASK_ID = VOCAB.mask_id


def metro_config(**rtd):
    data = json.load(open(METRO_BASE))
    data.update(TINY)
    data["rtd"] = {**data["rtd"], **rtd}
    c = config_from_dict(data, METRO_BASE)
    c.vocab_size = len(TOKENS)
    return c


def collated_batch(mask_prob=0.15, batch=6, length=30, seed=0):
    """Real t5 instances through the real collator (span corruption, then the mlm target's masking)."""
    rng = np.random.default_rng(seed)
    words = np.arange(5, 5 + len(WORDS))                 # the WORDS ids
    items = [{"src": np.array([VOCAB.cls_id, *rng.choice(words, length - 2), VOCAB.sep_id])} for _ in range(batch)]
    noiser = T5Noiser(VOCAB, seq_length=length, seed=seed)
    masking = MaskingConfig(mask_prob=mask_prob, replace_mask=0.85, replace_random=0.0)
    collator = PretrainCollator(VOCAB, ["mlm", "rtd", "lm"], masking, seed, ("src",), seq_length=length,
                                noiser=noiser)
    out = collator(items, list(range(batch)), epoch=0)
    noised, _ = noiser([it["src"] for it in items], None, list(range(batch)), 0)
    clean = torch.full_like(out["src"], VOCAB.pad_id)
    for i, s in enumerate(noised):
        clean[i, : len(s)] = torch.from_numpy(s)
    return out, clean, noiser.sentinels


def spy(monkeypatch, model):
    """Record what the encoder and the RTD head receive."""
    seen = {}
    encode, head = model.discriminator.encode, model.rtd_head.forward

    def encode_spy(src, seg, **kwargs):      # kwargs: the host-side seg_lengths
        seen["encoder_src"] = src
        return encode(src, seg, **kwargs)

    def head_spy(hidden, batch):
        seen["rtd_labels"] = batch["rtd_labels"]
        return head(hidden, batch)
    monkeypatch.setattr(model.discriminator, "encode", encode_spy)
    monkeypatch.setattr(model.rtd_head, "forward", head_spy)
    return seen


def force_samples(monkeypatch, samples):
    monkeypatch.setattr("uer.models.electra.gumbel_sample", lambda logits, temperature: samples)


def test_rtd_labels_are_exactly_where_the_sample_differs_from_the_original(monkeypatch):
    torch.manual_seed(0)
    batch, clean, _ = collated_batch(mask_prob=0.3)
    model = MetroPretrainer(metro_config())
    positions, labels = batch["mlm_positions"], batch["mlm_labels"]
    valid = labels != -100
    assert valid.sum() > 20 and (batch["src"] == MASK_ID).any()
    # The generator's "samples": the original at every other slot, another word at the rest.
    originals = clean.gather(1, positions)
    other = (originals - 5 + 1) % len(WORDS) + 5
    differ = (torch.arange(positions.size(1)) % 2 == 1).expand_as(positions) & valid
    force_samples(monkeypatch, torch.where(differ, other, originals))
    seen = spy(monkeypatch, model)
    model(batch)
    encoder_src, rtd_labels = seen["encoder_src"], seen["rtd_labels"]
    expected = torch.zeros_like(rtd_labels).scatter(1, positions, differ)
    assert torch.equal(rtd_labels, expected) and expected.sum() > 5
    assert torch.equal(rtd_labels, (encoder_src != clean) & (batch["seg"] > 0))
    assert not (encoder_src == MASK_ID).any()          # every [MASK] was filled by the generator
    assert torch.equal(encoder_src.gather(1, positions)[differ], other[differ])


def test_sentinels_and_specials_are_never_selected_nor_replaced(monkeypatch):
    torch.manual_seed(1)
    batch, clean, sentinels = collated_batch(mask_prob=0.5, batch=8)
    protected = torch.isin(clean, torch.tensor(sorted(VOCAB.special_ids) + list(sentinels)))
    assert torch.isin(clean, torch.tensor(sentinels)).sum() >= 8        # the noiser inserted sentinels
    valid = batch["mlm_labels"] != -100
    selected = torch.zeros_like(protected).scatter(1, batch["mlm_positions"], valid)
    assert selected.sum() > 40 and not (selected & protected).any()
    # A hot generator, every sample a sentinel: protected positions still hold the processor's tokens.
    model = MetroPretrainer(metro_config(temperature=50.0))
    force_samples(monkeypatch, torch.full_like(batch["mlm_positions"], int(sentinels[-1])))
    seen = spy(monkeypatch, model)
    model(batch)
    assert torch.equal(seen["encoder_src"][protected], clean[protected])
    assert not seen["rtd_labels"][protected].any()


def plain_t5_twin(model):
    plain = Model(seq2seq_config(model.config))
    load_weights(plain, model.discriminator_backbone_state())     # strict: the same encoder-decoder
    return plain


def test_decoder_loss_is_plain_t5s_when_rtd_weight_is_0_and_nothing_is_replaced(monkeypatch):
    torch.manual_seed(2)
    batch, clean, _ = collated_batch()
    model = MetroPretrainer(metro_config(disc_weight=0.0, gen_weight=0.0, embedding_sharing="none"))
    plain = plain_t5_twin(model)
    positions, labels = batch["mlm_positions"], batch["mlm_labels"]
    force_samples(monkeypatch, clean.gather(1, positions))       # every sample = the original token
    out = model(batch)
    t5_batch = {k: batch[k] for k in ("seg", "tgt_in", "tgt_out", "tgt_seg")}
    reference = plain({**t5_batch, "src": clean})
    assert out["replaced_frac"] == 0
    torch.testing.assert_close(out["lm_loss"], reference["lm_loss"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out["loss"], reference["loss"], rtol=1e-6, atol=1e-6)
    assert out["mlm_loss"] > 0                                    # computed and logged, weighted 0
    # Meaningful: the [MASK]ed input (what the generator saw) gives T5 a different loss.
    assert (labels != -100).sum() > 5
    assert abs(plain({**t5_batch, "src": batch["src"]})["lm_loss"] - reference["lm_loss"]) > 1e-4
    # And the encoder-decoder's gradients are plain T5's.
    out["loss"].backward()
    reference["loss"].backward()
    plain_grads = dict(plain.named_parameters())
    for name, p in model.discriminator.named_parameters():
        torch.testing.assert_close(p.grad, plain_grads[name].grad, rtol=1e-5, atol=1e-7)


def grads(module):
    return [p.grad for p in module.parameters()]


def test_gradients_reach_the_generator_through_its_mlm_loss_only():
    batch, _, _ = collated_batch(mask_prob=0.3)
    torch.manual_seed(3)
    model = MetroPretrainer(metro_config(embedding_sharing="none"))
    out = model(batch)
    assert out["mlm_loss"] > 0 and out["rtd_loss"] > 0 and out["lm_loss"] > 0
    total = 1.0 * out["mlm_loss"] + 50.0 * out["rtd_loss"] + 1.0 * out["lm_loss"]   # the config's weights
    torch.testing.assert_close(out["loss"].detach(), total)
    out["loss"].backward()
    assert all(g is not None for g in grads(model.generator))
    assert sum(float(g.abs().sum()) for g in grads(model.generator)) > 0
    assert all(g is not None for g in grads(model.rtd_head)) and all(g is not None for g in grads(model.discriminator))
    # Without the generator's own loss nothing reaches it: the samples carry no gradient.
    model.zero_grad(set_to_none=True)
    model.rtd.gen_weight = 0.0
    out = model(batch)
    out["loss"].backward()
    assert all(g is None or not g.any() for g in grads(model.generator))
    assert sum(float(g.abs().sum()) for g in grads(model.discriminator) if g is not None) > 0


def test_shared_embedding_is_one_table_for_generator_encoder_decoder_and_output():
    model = MetroPretrainer(metro_config(embedding_sharing="shared"))
    table = model.generator.embedding.word_weight()
    seq2seq = model.discriminator
    assert seq2seq.embedding is model.generator.embedding
    assert seq2seq.tgt_embedding.word.weight is table
    assert seq2seq.target._modules["lm"]._embedding[0].word_weight() is table
    ids = {id(p) for p in model.parameters()}
    assert sum(p is table for p in model.parameters()) == 1 and id(table) in ids
    # The exported encoder-decoder keeps the one table and loads into a plain T5 strictly.
    plain = plain_t5_twin(model)
    assert torch.equal(plain.tgt_embedding.word.weight, table)


def test_gdes_decoder_and_output_read_the_stop_gradient_table_plus_residual():
    batch, _, _ = collated_batch(mask_prob=0.3)
    model = MetroPretrainer(metro_config(embedding_sharing="gdes", gen_weight=0.0))
    word = model.discriminator.embedding.word
    with torch.no_grad():
        word.delta.add_(0.5)
    assert torch.equal(model.discriminator.tgt_embedding.word.weight, word.effective_weight())
    out = model(batch)
    out["loss"].backward()     # RTD + decoder only: the generator's table gets nothing
    generator_grad = model.generator.embedding.word.embedding.weight.grad
    assert (generator_grad is None or not generator_grad.any()) and word.delta.grad.abs().sum() > 0
    state = model.discriminator_backbone_state()
    assert "embedding.word.delta" not in state
    assert torch.equal(state["embedding.word.embedding.weight"], word.effective_weight())


def test_config_checks_name_the_key_and_the_fix():
    data = json.load(open(METRO_BASE))
    with pytest.raises(ConfigError, match=r"m.json, key 'target'.*\"mlm\", \"rtd\", \"lm\""):
        config_from_dict({**data, "target": ["mlm", "rtd"]}, "m.json")
    encoder_only = {k: v for k, v in data.items() if k not in ("decoder", "tgt_embedding", "decoder_layers_num",
                                                              "share_embedding", "scale_tied_output")}
    with pytest.raises(ConfigError, match=r"key 'pretrainer': \"metro\".*no \"decoder\""):
        config_from_dict(encoder_only, "m.json")
    with pytest.raises(ConfigError, match=r"key 'pretrainer': \"electra\" trains an encoder.*\"metro\""):
        config_from_dict({**data, "pretrainer": "electra", "target": ["mlm", "rtd"]}, "m.json")
    with pytest.raises(ConfigError, match=r"rtd.decoder_weight': must be a finite number ≥ 0"):
        config_from_dict({**data, "rtd": {**data["rtd"], "decoder_weight": -1.0}}, "m.json")
    assert config_from_dict({**data, "rtd": {**data["rtd"], "disc_weight": 0.0}}).rtd.disc_weight == 0.0
    electra = json.load(open(os.path.join(ROOT, "models", "electra", "small.json")))
    with pytest.raises(ConfigError, match=r"rtd.decoder_weight': weighs a decoder's loss"):
        config_from_dict({**electra, "rtd": {**electra["rtd"], "decoder_weight": 2.0}}, "e.json")
    with pytest.raises(ConfigError, match=r"rtd.disc_weight': must be > 0"):
        config_from_dict({**electra, "rtd": {**electra["rtd"], "disc_weight": 0.0}}, "e.json")


def test_shipped_config_counts_t5_base_plus_generator_plus_rtd_head():
    c = load_config(METRO_BASE)
    assert (c.pretrainer, sorted(c.target), c.rtd.generator_size_multiplier) == ("metro", ["lm", "mlm", "rtd"], 1 / 3)
    assert (c.rtd.gen_weight, c.rtd.disc_weight, c.rtd.decoder_weight, c.rtd.embedding_sharing) == \
        (1.0, 50.0, 1.0, "shared")
    c.vocab_size = 32128                                        # T5's vocabulary
    with torch.device("meta"):
        model = build_model(c)
    n = sum(p.numel() for p in model.parameters())
    seq2seq = sum(p.numel() for p in model.discriminator.parameters())
    shared = {id(p) for p in model.discriminator.parameters()}
    generator_own = sum(p.numel() for p in model.generator.parameters() if id(p) not in shared)
    rtd = sum(p.numel() for p in model.rtd_head.parameters())
    assert seq2seq == 222_903_552                               # = t5-base (docs/models.md)
    assert (generator_own, rtd, n) == (9_870_848, 591_361, 233_365_761)
    assert model.generator.config.hidden_size == 256 and model.generator.config.heads_num == 4
    assert backbone_config(c).target == ["lm"] and not backbone_config(c).pretrainer


def test_saved_checkpoint_exports_a_plain_encoder_decoder(tmp_path):
    torch.manual_seed(4)
    c = metro_config()
    model = MetroPretrainer(c)
    path = str(tmp_path / "metro.bin")
    save_weights(model, path)
    plain = Model(backbone_config(c))
    load_weights(plain, backbone_source(c, path))                # strict, lm head included
    batch, clean, _ = collated_batch()
    t5_batch = {"src": clean, **{k: batch[k] for k in ("seg", "tgt_in", "tgt_out", "tgt_seg")}}
    model.eval()
    memory = model.discriminator.encode(clean, batch["seg"])
    ours = model.discriminator.logits(batch["tgt_in"], memory, batch["seg"], batch["tgt_seg"])
    theirs = plain.logits(batch["tgt_in"], plain.encode(clean, batch["seg"]), batch["seg"], batch["tgt_seg"])
    assert torch.equal(ours, theirs) and torch.isfinite(plain(t5_batch)["loss"])


def test_embedding_tools_read_a_metro_checkpoint_through_its_pretrainer(tmp_path):
    from uer.config import save_config
    from uer.tools.common import word_embedding_table
    c = metro_config()
    model = MetroPretrainer(c)
    path = str(tmp_path / "metro.bin")
    save_weights(model, path)
    save_config(c, str(tmp_path / "metro.json"))
    table = word_embedding_table(path, len(TOKENS), "vocab.txt", str(tmp_path / "metro.json"))
    assert torch.equal(table, model.discriminator.embedding.word_weight()[: len(TOKENS)])
