"""The "electra" config: the registries of its parts, the sub-configs derived from it (generator,
discriminator) and the checks its "rtd" section must pass at config-load time.

The parts are registered in uer/models/electra.py; the checks read the registries when they run,
so a new generator or corruption course is valid as soon as it is registered there."""

import math

from uer.config import ModelConfig
from uer.errors import ConfigError
from uer.models.model import plain_config
from uer.registry import Registry

GENERATORS = Registry("rtd generator")
CORRUPTIONS = Registry("rtd corruption course")
SHARING = Registry("rtd embedding sharing mode")
TEMPERATURE_SCHEDULES = Registry("rtd temperature schedule")


def encoder_only() -> dict:
    """The decoder-side keys of ModelConfig at their "no decoder" values (a fresh list each call)."""
    return dict(decoder="", tgt_embedding=[], decoder_layers_num=0, decoder_heads_num=0,
                decoder_feedforward_size=0, tgt_vocab_size=0, share_embedding=False, scale_tied_output=False)


def generator_config(config: ModelConfig) -> ModelConfig:
    """The generator: the discriminator's shape scaled by ``rtd.generator_size_multiplier`` in width,
    FFN and heads (same depth unless ``rtd.generator_layers_num``), an MLM target, and the
    discriminator's embedding width so that tables can be shared.  Always encoder-only: of an
    encoder-decoder config (METRO) it keeps the encoder side (its decoder keys are dropped)."""
    r = config.rtd
    heads = max(1, round(config.heads_num * r.generator_size_multiplier))
    hidden = round(config.hidden_size * r.generator_size_multiplier)
    return plain_config(
        config, hidden_size=hidden, heads_num=heads, attention_head_size=0,
        feedforward_size=max(1, round(config.feedforward_size * r.generator_size_multiplier)),
        layers_num=r.generator_layers_num or config.layers_num,
        factorized_embedding_parameterization=config.emb_size != hidden, target=["mlm"], **encoder_only())


def discriminator_config(config: ModelConfig) -> ModelConfig:
    """The discriminator — the model fine-tuning keeps: the config's shape with the rtd head."""
    return plain_config(config, target=["rtd"])


def _where(source: str, key: str) -> str:
    return f"{source}, key '{key}'"


def check_electra_config(c: ModelConfig, source: str) -> None:
    """What "pretrainer": "electra" requires of the rest of the config (ConfigError otherwise)."""
    if c.decoder:
        raise ConfigError(f"{source}, key 'pretrainer': \"electra\" trains an encoder, but the config has a "
                          f"decoder (\"decoder\": \"{c.decoder}\"); use \"pretrainer\": \"metro\" for replaced-token "
                          "detection on an encoder-decoder model, or remove the decoder keys")
    if sorted(c.target) != ["mlm", "rtd"]:
        raise ConfigError(f"{source}, key 'target': the electra pretrainer trains [\"mlm\", \"rtd\"] (generator "
                          f"MLM + discriminator replaced-token detection), got {c.target}")
    check_rtd_section(c, source)
    if c.rtd.disc_weight <= 0:
        raise ConfigError(f"{source}, key 'rtd.disc_weight': must be > 0 (replaced-token detection is what "
                          f"electra trains), got {c.rtd.disc_weight}")
    if c.rtd.decoder_weight != 1.0:
        raise ConfigError(f"{source}, key 'rtd.decoder_weight': weighs a decoder's loss (\"pretrainer\": "
                          "\"metro\"); an electra model has no decoder, remove the key")


def check_rtd_section(c: ModelConfig, source: str) -> None:
    """The checks of the "rtd" section that every generator + RTD composite shares (electra, metro)."""
    r = c.rtd
    GENERATORS.get(r.generator, where=_where(source, "rtd.generator"))
    CORRUPTIONS.get(r.corruption, where=_where(source, "rtd.corruption"))
    SHARING.get(r.embedding_sharing, where=_where(source, "rtd.embedding_sharing"))
    if r.temperature_schedule != "constant":
        TEMPERATURE_SCHEDULES.get(r.temperature_schedule, where=_where(source, "rtd.temperature_schedule") +
                                  "; \"constant\" is valid too")
    if c.enhanced_mask_decoder and r.generator != "joint":
        raise ConfigError(f"{source}, key 'enhanced_mask_decoder': in a composite pretrainer it applies to the "
                          f"generator trained alongside (rtd.generator \"joint\"), got \"{r.generator}\"; "
                          "set \"enhanced_mask_decoder\": false (a frozen generator's own config decides)")
    if r.temperature_schedule != "constant":
        if not (r.temperature_start > 0 and r.temperature_end > 0 and math.isfinite(r.temperature_start)
                and math.isfinite(r.temperature_end)):
            raise ConfigError(f"{source}, keys 'rtd.temperature_start'/'temperature_end': must be finite and > 0, "
                              f"got {r.temperature_start}, {r.temperature_end}")
        if r.temperature_steps <= 0:
            raise ConfigError(f"{source}, key 'rtd.temperature_steps': the \"{r.temperature_schedule}\" schedule "
                              f"needs its length in optimizer steps (> 0), got {r.temperature_steps}")
    if r.generator == "frozen" and r.embedding_sharing != "none":
        raise ConfigError(f"{source}, key 'rtd.embedding_sharing': a frozen generator is never trained, so "
                          f"\"{r.embedding_sharing}\" would freeze (shared) or pin (gdes) the discriminator's "
                          "embeddings to it; use \"none\"")
    if r.generator != "frozen" and (r.generator_checkpoint or r.generator_config):
        raise ConfigError(f"{source}, keys 'rtd.generator_checkpoint'/'generator_config': only used by "
                          f"rtd.generator \"frozen\", but the generator is \"{r.generator}\"; remove them or "
                          "set \"generator\": \"frozen\"")
    if not 0.0 < r.generator_size_multiplier <= 1.0:
        raise ConfigError(f"{source}, key 'rtd.generator_size_multiplier': must be in (0, 1], "
                          f"got {r.generator_size_multiplier}")
    if r.generator_layers_num < 0 or r.temperature <= 0 or r.gen_weight < 0:
        raise ConfigError(f"{source}, 'rtd': generator_layers_num ≥ 0, temperature > 0 and gen_weight ≥ 0 "
                          "are required")
    for key in ("gen_weight", "disc_weight", "decoder_weight"):
        if not math.isfinite(getattr(r, key)) or getattr(r, key) < 0:
            raise ConfigError(f"{source}, key 'rtd.{key}': must be a finite number ≥ 0, got {getattr(r, key)}")
    if r.generator == "random" and (c.masking.replace_random != 1.0 or c.masking.replace_mask != 0.0):
        raise ConfigError(f"{source}: rtd.generator \"random\" replaces every selected token with a random one "
                          "in the collator; set \"masking\": {\"replace_mask\": 0.0, \"replace_random\": 1.0}")
    if not GENERATORS.get(r.generator).network and r.embedding_sharing != "none":
        raise ConfigError(f"{source}: rtd.embedding_sharing \"{r.embedding_sharing}\" needs a generator network "
                          "(rtd.generator \"joint\"); use \"none\" with statistical generators")
    if r.generator == "joint":
        heads = max(1, round(c.heads_num * r.generator_size_multiplier))
        if round(c.hidden_size * r.generator_size_multiplier) % heads:
            raise ConfigError(f"{source}, key 'rtd.generator_size_multiplier': the generator's hidden size "
                              f"{round(c.hidden_size * r.generator_size_multiplier)} is not divisible by its "
                              f"{heads} heads; choose a multiplier such as 1/4 or 1/3 that keeps them whole")
