"""ELECTRA-family composite: sampling, labels, sharing modes, GDES gradients, export, corruption courses."""

import dataclasses

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.models import build_model
from uer.models.electra import ElectraPretrainer, GdesTable, gumbel_sample, swap_tokens
from uer.models.weights import load_weights
from uer.tasks.classification import Classifier
from uer.training.optim import build_optimizer

VOCAB = 120


def electra_config(**rtd):
    c = config_from_dict(dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
                              max_seq_length=32, dropout=0.0, target=["mlm", "rtd"], pretrainer="electra",
                              masking=dict(replace_mask=0.85, replace_random=0.0), rtd=rtd))
    c.vocab_size = VOCAB
    return c


def masked_batch(seed=0, batch=4, length=16, slots=3):
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(5, VOCAB, (batch, length), generator=g)
    seg = torch.ones(batch, length, dtype=torch.long)
    seg[:, -2:] = 0
    positions = torch.stack([torch.randperm(length - 2, generator=g)[:slots].sort().values for _ in range(batch)])
    labels = original.gather(1, positions)
    labels[0, -1] = -100                       # an unused slot
    src = original.scatter(1, positions, torch.full_like(positions, 4))   # [MASK] = 4
    src[0, positions[0, -1]] = original[0, positions[0, -1]]             # the unused slot is left as is
    return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels}, original


def test_gumbel_sampling_temperature_limits():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]]).repeat(4000, 1)
    cold = gumbel_sample(logits, temperature=1e-4)
    assert torch.all(cold == 0)                                   # T -> 0: argmax
    hot = gumbel_sample(logits, temperature=1e4)
    freq = torch.bincount(hot, minlength=4).float() / len(hot)
    assert torch.all((freq - 0.25).abs() < 0.03)                  # T large: near uniform
    t1 = torch.bincount(gumbel_sample(logits, 1.0), minlength=4).float() / 4000
    assert torch.allclose(t1, torch.softmax(logits[0], -1), atol=0.03)   # T = 1: softmax


def test_labels_unmasked_positions_unchanged_and_correct_samples_count_as_original(monkeypatch):
    torch.manual_seed(0)
    model = ElectraPretrainer(electra_config())
    batch, original = masked_batch()
    captured = {}
    real_forward = model.discriminator.forward

    def spy(disc_batch):
        captured.update(disc_batch)
        return real_forward(disc_batch)
    monkeypatch.setattr(model.discriminator, "forward", spy)
    # The generator "samples" the original token at slot 0 and another token elsewhere.
    positions = batch["mlm_positions"]
    forced = original.gather(1, positions).clone()
    forced[:, 1:] = (forced[:, 1:] + 1 - 5) % (VOCAB - 5) + 5
    monkeypatch.setattr("uer.models.electra.gumbel_sample", lambda logits, t: forced)
    model(batch)
    corrupted, labels = captured["src"], captured["rtd_labels"]
    mask = torch.zeros_like(original, dtype=torch.bool).scatter(1, positions, True)
    assert torch.equal(corrupted[~mask], original[~mask])          # unselected tokens never change
    assert not labels[~mask].any()
    rows = torch.arange(4)
    assert not labels[rows, positions[:, 0]].any()                 # a correct sample is "original"
    assert labels[rows[1:], positions[1:, 1]].all()                # a wrong sample is "replaced"
    # The unused slot (-100) is neither corrupted nor labelled.
    p = positions[0, -1]
    assert corrupted[0, p] == original[0, p] and not labels[0, p]


def test_sharing_modes_one_or_two_tensors():
    shared = ElectraPretrainer(electra_config(embedding_sharing="shared"))
    none = ElectraPretrainer(electra_config(embedding_sharing="none"))
    assert shared.discriminator.embedding is shared.generator.embedding
    assert shared.discriminator.embedding.word_weight().data_ptr() == shared.generator.embedding.word_weight().data_ptr()
    assert none.discriminator.embedding.word_weight().data_ptr() != none.generator.embedding.word_weight().data_ptr()
    gdes = ElectraPretrainer(electra_config(embedding_sharing="gdes"))
    assert isinstance(gdes.discriminator.embedding._modules["word"], GdesTable)
    assert isinstance(gdes.discriminator.embedding._modules["pos"], GdesTable)
    assert torch.count_nonzero(gdes.discriminator.embedding._modules["word"].delta) == 0


def test_gdes_gradients_are_disentangled():
    torch.manual_seed(0)
    model = ElectraPretrainer(electra_config(embedding_sharing="gdes"))
    batch, _ = masked_batch()
    gen_table = model.generator.embedding._modules["word"].embedding.weight
    delta = model.discriminator.embedding._modules["word"].delta
    # RTD loss alone: no gradient reaches the generator's table.
    model.rtd.gen_weight = 0.0
    model(batch)["loss"].backward()
    assert gen_table.grad is None or torch.count_nonzero(gen_table.grad) == 0
    assert torch.count_nonzero(delta.grad) > 0
    model.zero_grad(set_to_none=True)
    # MLM loss alone: no gradient reaches the residual.
    gen_out = model.generator(batch)
    gen_out["loss"].backward()
    assert delta.grad is None or torch.count_nonzero(delta.grad) == 0
    assert torch.count_nonzero(gen_table.grad) > 0


def test_gdes_step_and_export_sum():
    torch.manual_seed(0)
    config = electra_config(embedding_sharing="gdes")
    model = build_model(config)
    optimizer = build_optimizer(model, 1e-2, weight_decay=0.0)
    batch, _ = masked_batch()
    model(batch)["loss"].backward()
    optimizer.step()
    word = model.discriminator.embedding._modules["word"]
    assert torch.count_nonzero(word.delta) > 0
    state = model.discriminator_backbone_state()
    expected = model.generator.embedding._modules["word"].embedding.weight + word.delta
    assert torch.allclose(state["embedding.word.embedding.weight"], expected)
    assert not any(k.endswith(".delta") or k.startswith("target.") for k in state)
    # The exported backbone loads strictly into a fine-tuning model built from the same config.
    classifier = Classifier(dataclasses.replace(config, pretrainer=""))
    load_weights(classifier, state, allow_missing=("head.",))
    hidden_export = classifier.encoder(classifier.embedding(batch["src"], batch["seg"]), batch["seg"])
    model.eval()
    hidden_disc = model.discriminator.encode(batch["src"], batch["seg"])
    assert torch.allclose(hidden_export, hidden_disc, atol=1e-6)


def test_swap_is_a_permutation_of_the_selected_tokens():
    torch.manual_seed(0)
    tokens = torch.arange(40).view(4, 10)
    valid = torch.ones(4, 10, dtype=torch.bool)
    valid[0, 7:] = False
    out = swap_tokens(tokens, valid)
    assert torch.equal(out[~valid], tokens[~valid])
    for row in range(4):
        assert sorted(out[row][valid[row]].tolist()) == sorted(tokens[row][valid[row]].tolist())
    assert not torch.equal(out, tokens)


def test_statistical_generators():
    torch.manual_seed(0)
    unigram = build_model(electra_config(generator="unigram", embedding_sharing="none"))
    assert unigram.generator is None
    batch, original = masked_batch()
    out = unigram(batch)
    assert {"rtd_loss", "rtd_precision", "rtd_recall", "replaced_frac"} <= set(out) and "mlm_loss" not in out
    counted = unigram.unigram_counts.sum() - VOCAB           # add-one smoothing
    assert counted == (batch["mlm_labels"] != -100).sum()
    swap = build_model(electra_config(generator="unigram", corruption="swap", embedding_sharing="none"))
    assert swap(batch)["replaced_frac"] > 0
    with pytest.raises(ConfigError, match="replace_random"):
        electra_config(generator="random", embedding_sharing="none")
    cfg = config_from_dict(dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
                                max_seq_length=32, target=["mlm", "rtd"], pretrainer="electra",
                                masking=dict(replace_mask=0.0, replace_random=1.0),
                                rtd=dict(generator="random", embedding_sharing="none")))
    cfg.vocab_size = VOCAB
    random_model = build_model(cfg)
    rb, _ = masked_batch()
    rb["src"] = rb["src"].scatter(1, rb["mlm_positions"], torch.full_like(rb["mlm_positions"], 7))
    assert random_model(rb)["replaced_frac"] > 0.5


def test_config_validation():
    with pytest.raises(ConfigError, match="rtd.embedding_sharing"):
        electra_config(embedding_sharing="tied")
    with pytest.raises(ConfigError, match="needs a generator network"):
        electra_config(generator="unigram", embedding_sharing="gdes")
    with pytest.raises(ConfigError, match="electra pretrainer trains"):
        config_from_dict(dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2,
                              target=["mlm"], pretrainer="electra"))
    with pytest.raises(ConfigError, match="not divisible"):
        electra_config(generator_size_multiplier=0.6)   # hidden 19, 2 heads


def test_shipped_electra_configs():
    from uer.config import load_config
    small = load_config("models/electra/small.json")
    small.vocab_size = 30522
    model = build_model(small)
    disc = sum(p.numel() for p in model.discriminator.parameters())
    assert 13e6 < disc < 15e6                     # ELECTRA-Small: 14M parameters
    assert model.generator.config.hidden_size == 64 and model.generator.config.layers_num == 12


def test_a_new_corruption_course_is_one_registration():
    """Extension point (issue: METRO-style and new corruption courses without touching the Trainer):
    a course registered in CORRUPTIONS is selectable by name in the config and trains as is."""
    from uer.models.electra import CORRUPTIONS

    @CORRUPTIONS.register("next_token_for_test")
    def next_token(owner, batch, positions, originals, valid, out):
        return (originals + 1).clamp(max=VOCAB - 1)
    try:
        with pytest.raises(ConfigError, match="next_token_for_test"):     # listed among the choices
            electra_config(generator="unigram", embedding_sharing="none", corruption="no_such_course")
        model = ElectraPretrainer(electra_config(generator="unigram", embedding_sharing="none",
                                                         corruption="next_token_for_test"))
        batch, original = masked_batch()
        seen = {}
        real_forward = model.discriminator.forward
        model.discriminator.forward = lambda b: seen.update(b) or real_forward(b)
        out = model(batch)
        out["loss"].backward()
        valid = batch["mlm_labels"] != -100
        corrupted = seen["src"]
        picked = corrupted.gather(1, batch["mlm_positions"])
        assert torch.equal(picked[valid], (original.gather(1, batch["mlm_positions"]) + 1).clamp(max=VOCAB - 1)[valid])
        assert int(seen["rtd_labels"].sum()) == int(valid.sum())        # every changed token is labelled
        assert out["replaced_frac"].item() == 1.0 and torch.isfinite(out["loss"])
    finally:
        CORRUPTIONS._entries.pop("next_token_for_test")
