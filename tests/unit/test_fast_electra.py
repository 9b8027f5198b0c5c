"""Fast-ELECTRA: a frozen MLM checkpoint as the generator, temperature schedules by optimizer step,
the Trainer's set_training_step hook, and resume exactness with the frozen generator."""

import dataclasses
import json
import math
import os

import pytest
import torch

from uer.config import RtdConfig, config_from_dict, load_config, save_config
from uer.errors import CheckpointError, ConfigError
from uer.models import build_model
from uer.models.electra import ElectraPretrainer, discriminator_backbone_from_state, temperature_at
from uer.models.model import Model
from uer.models.weights import model_state, save_weights
from uer.training.optim import build_optimizer

VOCAB = 120
BASE = dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2, max_seq_length=32,
            dropout=0.0)


def mlm_checkpoint(directory, vocab=VOCAB, seed=0, hidden=16):
    """A tiny MLM weights file with its config beside it, as pretrain.py writes them."""
    config = config_from_dict(dict(BASE, emb_size=hidden, hidden_size=hidden, heads_num=2, target=["mlm"]))
    config.vocab_size = vocab
    torch.manual_seed(seed)
    model = Model(config)
    path = os.path.join(str(directory), "gen.bin")
    save_weights(model, path)
    save_config(config, path + ".config.json")
    return path, model


def frozen_config(checkpoint, **rtd):
    c = config_from_dict(dict(BASE, target=["mlm", "rtd"], pretrainer="electra",
                              masking=dict(replace_mask=0.85, replace_random=0.0),
                              rtd=dict(generator="frozen", embedding_sharing="none",
                                       generator_checkpoint=checkpoint, **rtd)))
    c.vocab_size = VOCAB
    return c


def masked_batch(seed=0, batch=4, length=16, slots=3):
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(5, VOCAB, (batch, length), generator=g)
    seg = torch.ones(batch, length, dtype=torch.long)
    positions = torch.stack([torch.randperm(length, generator=g)[:slots].sort().values for _ in range(batch)])
    labels = original.gather(1, positions)
    src = original.scatter(1, positions, torch.full_like(positions, 4))
    return {"src": src, "seg": seg, "mlm_positions": positions, "mlm_labels": labels}


# -- temperature schedules --------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, middle", [("exponential", math.sqrt(4.0 * 1.0)), ("linear", 2.5),
                                              ("cosine", 2.5)])
def test_schedule_values(schedule, middle):
    r = RtdConfig(temperature_schedule=schedule, temperature_start=4.0, temperature_end=1.0, temperature_steps=100)
    assert temperature_at(r, 0) == pytest.approx(4.0)
    assert temperature_at(r, 50) == pytest.approx(middle)
    assert temperature_at(r, 100) == 1.0
    assert temperature_at(r, 1000) == 1.0
    values = [temperature_at(r, s) for s in range(0, 101)]
    assert all(a > b for a, b in zip(values, values[1:]))          # strictly descending
    rising = dataclasses.replace(r, temperature_start=0.5, temperature_end=2.0)   # ascending is allowed
    assert temperature_at(rising, 0) == pytest.approx(0.5) and temperature_at(rising, 100) == 2.0


def test_schedule_shapes_differ_and_constant_uses_temperature():
    r = RtdConfig(temperature_start=4.0, temperature_end=1.0, temperature_steps=100)
    at25 = {s: temperature_at(dataclasses.replace(r, temperature_schedule=s), 25)
            for s in ("exponential", "linear", "cosine")}
    assert at25["exponential"] == pytest.approx(4.0 * 0.25 ** 0.25)
    assert at25["linear"] == pytest.approx(3.25)
    assert at25["cosine"] == pytest.approx(1.0 + 3.0 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert temperature_at(RtdConfig(temperature=0.7), 12345) == 0.7


def test_schedule_validation():
    def cfg(**rtd):
        return config_from_dict(dict(BASE, target=["mlm", "rtd"], pretrainer="electra", rtd=rtd))
    with pytest.raises(ConfigError, match="rtd.temperature_steps"):
        cfg(temperature_schedule="linear", temperature_start=2.0)
    with pytest.raises(ConfigError, match="temperature_start"):
        cfg(temperature_schedule="cosine", temperature_start=0.0, temperature_steps=10)
    with pytest.raises(ConfigError, match="rtd.temperature_schedule"):
        cfg(temperature_schedule="step")
    # A joint generator can use a schedule too.
    joint = cfg(temperature_schedule="exponential", temperature_start=2.0, temperature_steps=10)
    joint.vocab_size = VOCAB
    model = build_model(joint)
    model.set_training_step(5)
    assert model(masked_batch())["gen_temperature"].item() == pytest.approx(2.0 * 0.5 ** 0.5)


# -- the frozen generator -----------------------------------------------------------------------------

def test_frozen_generator_is_outside_the_trained_model(tmp_path):
    path, reference = mlm_checkpoint(tmp_path)
    torch.manual_seed(1)
    model = build_model(frozen_config(path))
    frozen = model.frozen_generator
    assert frozen is not None and model.generator is None
    frozen_params = {id(p) for p in frozen.parameters()}
    assert not frozen_params & {id(p) for p in model.parameters()}
    assert all(k.startswith("discriminator.") for k in model.state_dict())
    assert not any(m is frozen for m in model.modules())
    optimizer = build_optimizer(model, 1e-2, weight_decay=0.0)
    assert not frozen_params & {id(p) for g in optimizer.param_groups for p in g["params"]}
    # Loaded exactly from the file.
    for key, value in model_state(reference).items():
        assert torch.equal(frozen.state_dict()[key], value)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    model.train()
    assert not frozen.training and model.discriminator.training
    out = model(masked_batch())
    assert "mlm_loss" not in out and {"rtd_loss", "mlm_acc", "gen_temperature", "replaced_frac"} <= set(out)
    out["loss"].backward()
    optimizer.step()
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())


def test_frozen_generator_samples_its_own_predictions_and_follows_device_and_dtype(tmp_path):
    path, reference = mlm_checkpoint(tmp_path)
    model = build_model(frozen_config(path, temperature=1e-6))     # T -> 0: the argmax
    batch = masked_batch()
    captured = {}
    real = model.discriminator.forward

    def spy(disc_batch):
        captured.update(disc_batch)
        return real(disc_batch)
    model.discriminator.forward = spy
    model(batch)
    reference.eval()
    with torch.no_grad():
        head = reference.target._modules["mlm"]
        expected = head.logits(reference.encode(batch["src"], batch["seg"]), batch["mlm_positions"]).argmax(-1)
    assert torch.equal(captured["src"].gather(1, batch["mlm_positions"]), expected)
    # model.to() does not move it (not a submodule); the forward moves it to the batch and dtype.
    model.to(torch.float64)
    assert next(model.frozen_generator.parameters()).dtype == torch.float32
    model(batch)["loss"].backward()
    assert next(model.frozen_generator.parameters()).dtype == torch.float64
    assert not model.frozen_generator.training


def test_frozen_generator_errors(tmp_path):
    with pytest.raises(ConfigError, match="--rtd_generator_checkpoint"):
        build_model(frozen_config(""))
    with pytest.raises(ConfigError, match="missing.bin does not exist"):
        build_model(frozen_config(str(tmp_path / "missing.bin")))
    with pytest.raises(ConfigError, match="rtd.embedding_sharing"):
        config_from_dict(dict(BASE, target=["mlm", "rtd"], pretrainer="electra",
                              rtd=dict(generator="frozen", embedding_sharing="shared")))
    with pytest.raises(ConfigError, match="only used by"):
        config_from_dict(dict(BASE, target=["mlm", "rtd"], pretrainer="electra",
                              rtd=dict(generator_checkpoint="gen.bin")))
    other = tmp_path / "other"
    other.mkdir()
    path, _ = mlm_checkpoint(other, vocab=200)
    with pytest.raises(ConfigError, match="200 tokens but the discriminator's has 120"):
        build_model(frozen_config(path))
    # No config beside the file: say where it looked and which key to set.
    bare = tmp_path / "bare"
    bare.mkdir()
    path, _ = mlm_checkpoint(bare)
    os.remove(path + ".config.json")
    with pytest.raises(ConfigError, match="rtd.generator_config"):
        build_model(frozen_config(path))
    # A config that does not match the weights: the strict load names the file and the keys.
    wrong = config_from_dict(dict(BASE, target=["mlm"]))          # hidden 32, the file has 16
    wrong.vocab_size = VOCAB
    save_config(wrong, str(tmp_path / "wrong.json"))
    with pytest.raises(CheckpointError, match="gen.bin does not match.*shape mismatches"):
        build_model(frozen_config(path, generator_config=str(tmp_path / "wrong.json")))
    # Not a masked LM.
    lm = config_from_dict(dict(BASE, target=["lm"], mask="causal"))
    lm.vocab_size = VOCAB
    save_config(lm, str(tmp_path / "lm.json"))
    with pytest.raises(ConfigError, match="masked-LM"):
        build_model(frozen_config(path, generator_config=str(tmp_path / "lm.json")))


def test_export_and_meta_builds_do_not_need_the_generator_file(tmp_path):
    path, _ = mlm_checkpoint(tmp_path)
    config = frozen_config(path)
    model = build_model(config)
    state = model_state(model)
    os.remove(path)
    backbone = discriminator_backbone_from_state(config, state)
    assert not any(k.startswith("target.") for k in backbone)
    with torch.device("meta"):
        assert ElectraPretrainer(config).frozen_generator is None


def test_shipped_fast_small_config_and_rtd_overrides():
    from uer.cli.model_args import add_model_override_args, model_overrides
    import argparse
    c = load_config("models/electra/fast_small.json")
    assert c.rtd.generator == "frozen" and c.rtd.embedding_sharing == "none"
    assert c.rtd.temperature_schedule == "exponential" and c.rtd.temperature_start > c.rtd.temperature_end
    c.vocab_size = 30522
    with pytest.raises(ConfigError, match="--rtd_generator_checkpoint"):
        build_model(c)
    parser = argparse.ArgumentParser()
    add_model_override_args(parser, masking=True)
    args = parser.parse_args(["--rtd_generator_checkpoint", "gen.bin", "--rtd_temperature_steps", "7",
                              "--dropout", "0.0"])
    overrides = model_overrides(args)
    assert overrides["rtd"] == {"generator_checkpoint": "gen.bin", "temperature_steps": 7}
    merged = load_config("models/electra/fast_small.json", overrides)
    assert merged.rtd.generator_checkpoint == "gen.bin" and merged.rtd.temperature_steps == 7
    assert merged.rtd.temperature_start == c.rtd.temperature_start and merged.dropout == 0.0


# -- end to end: pretrain an MLM, then Fast-ELECTRA from it --------------------------------------------

TINY_ELECTRA = dict(BASE, max_seq_length=64, target=["mlm", "rtd"], pretrainer="electra", data_processor="mlm",
                    masking=dict(replace_mask=0.85, replace_random=0.0),
                    rtd=dict(generator="frozen", embedding_sharing="none", temperature_schedule="exponential",
                             temperature_start=3.0, temperature_end=1.0, temperature_steps=4))


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def fast_setup(tiny_corpus, tmp_path_factory):
    from uer.cli.preprocess import main as preprocess_main
    from uer.cli.pretrain import main as pretrain_main
    root = tmp_path_factory.mktemp("fast")
    vocab = str(tiny_corpus / "vocab.txt")
    dataset = str(root / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--seq_length", "32", "--data_processor", "mlm"])
    mlm_config = root / "mlm.json"
    mlm_config.write_text(json.dumps(dict(BASE, emb_size=16, hidden_size=16, heads_num=2, max_seq_length=64,
                                          target=["mlm"], data_processor="mlm")))
    generator = str(root / "gen" / "mlm.bin")
    pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(mlm_config),
                   "--output_model_path", generator, "--total_steps", "3", "--batch_size", "8",
                   "--num_workers", "0", "--report_steps", "3"])
    electra_config = root / "electra.json"
    electra_config.write_text(json.dumps(TINY_ELECTRA))
    return dict(vocab=vocab, dataset=dataset, generator=generator, config=str(electra_config))


def run_fast(setup, out, steps, *extra):
    from uer.cli.pretrain import main as pretrain_main
    return pretrain_main(["--dataset_path", setup["dataset"], "--vocab_path", setup["vocab"],
                          "--config_path", setup["config"], "--rtd_generator_checkpoint", setup["generator"],
                          "--output_model_path", out, "--total_steps", str(steps), "--report_steps", "1",
                          "--save_checkpoint_steps", "2", "--batch_size", "8", "--learning_rate", "1e-3",
                          "--num_workers", "0", "--seed", "5", *extra])


def records(out):
    with open(out + ".metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_pretrain_logs_the_scheduled_temperature_and_saves_no_generator(fast_setup, tmp_path, monkeypatch):
    from uer.models.weights import read_weights
    seen = []
    original = ElectraPretrainer.set_training_step

    def spy(self, step):
        seen.append(step)
        return original(self, step)
    monkeypatch.setattr(ElectraPretrainer, "set_training_step", spy)
    out = str(tmp_path / "fast.bin")
    run_fast(fast_setup, out, 6)
    assert seen == [0, 1, 2, 3, 4, 5]                          # before each optimizer step
    logged = [(r["step"], r["gen_temperature"]) for r in records(out)]
    r = RtdConfig(**TINY_ELECTRA["rtd"])
    assert [s for s, _ in logged] == list(range(1, 7))
    for step, temperature in logged:                           # record "step k" ran at T(k - 1)
        assert temperature == pytest.approx(temperature_at(r, step - 1))
    assert logged[0][1] == pytest.approx(3.0) and logged[-1][1] == pytest.approx(1.0)
    assert all(k.startswith("discriminator.") for k in read_weights(out))
    saved = load_config(out + ".config.json")
    assert saved.rtd.generator_checkpoint == fast_setup["generator"]


def test_resume_with_frozen_generator_is_exact(fast_setup, tmp_path, monkeypatch):
    from uer.training.trainer import Trainer
    straight = str(tmp_path / "straight" / "m.bin")
    run_fast(fast_setup, straight, 6)
    resumed = str(tmp_path / "resumed" / "m.bin")
    report = Trainer._report

    def crash_at_5(self, *args, **kwargs):
        record = report(self, *args, **kwargs)
        if self.step == 5:
            raise Interrupted()
        return record
    monkeypatch.setattr(Trainer, "_report", crash_at_5)
    with pytest.raises(Interrupted):
        run_fast(fast_setup, resumed, 6)
    monkeypatch.setattr(Trainer, "_report", report)
    run_fast(fast_setup, resumed, 6, "--resume")               # from the step-4 checkpoint
    keys = ("step", "loss", "rtd_loss", "gen_temperature", "replaced_frac")
    a = [tuple(r[k] for k in keys) for r in records(straight)]
    b = [tuple(r[k] for k in keys) for r in records(resumed)]
    assert [x[0] for x in b] == list(range(1, 7))
    assert a == b
    r = RtdConfig(**TINY_ELECTRA["rtd"])                       # the schedule continued after the resume
    assert [x[3] for x in b] == pytest.approx([temperature_at(r, s - 1) for s in range(1, 7)])


def test_converted_hugging_face_generator_is_a_frozen_generator(tmp_path):
    """An ElectraForMaskedLM converted by scripts/convert.py (config written as <out>.json beside
    the weights) samples the argmax of the Hugging Face model's own logits at T -> 0."""
    T = pytest.importorskip("transformers")
    from uer.convert.cli import convert_hf_to_uer
    T.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = T.ElectraForMaskedLM(T.ElectraConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32,
                                              num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                              max_position_embeddings=40)).eval()
    hf.save_pretrained(tmp_path / "hf")
    out = str(tmp_path / "uer" / "generator.bin")
    convert_hf_to_uer(str(tmp_path / "hf"), out)
    model = build_model(frozen_config(out, temperature=1e-6))
    batch = masked_batch()
    captured = {}
    real = model.discriminator.forward

    def spy(disc_batch):
        captured.update(disc_batch)
        return real(disc_batch)
    model.discriminator.forward = spy
    model(batch)
    with torch.no_grad():
        logits = hf(input_ids=batch["src"], attention_mask=torch.ones_like(batch["src"]),
                    token_type_ids=torch.zeros_like(batch["src"])).logits
    expected = logits.gather(1, batch["mlm_positions"].unsqueeze(-1).expand(-1, -1, logits.size(-1))).argmax(-1)
    assert torch.equal(captured["src"].gather(1, batch["mlm_positions"]), expected)
