"""ELECTRA-family composite pretrainer: a generator corrupts the input, a discriminator detects
which tokens were replaced (Clark et al. 2020).

Parts, each a config choice (``"pretrainer": "electra"`` plus the ``"rtd"`` section) and each a
registration below, so a new one is one decorated class or function (the Trainer never knows):
- generator (``GENERATORS``): ``joint`` (a small MLM trained alongside, sampled with Gumbel-max at a
  temperature, no gradient through the sample), ``frozen`` (Fast-ELECTRA, Dong et al. 2023: an
  existing MLM checkpoint, never trained, kept outside the module tree), ``unigram`` (samples from
  token frequencies counted on the training data so far) or ``random`` (the collator's random
  replacement; no network);
- corruption course (``CORRUPTIONS``): ``replace`` (the generator's samples) or ``swap`` (the
  selected tokens shuffled among themselves);
- embedding sharing (``SHARING``): ``none``, ``shared`` (one embedding module) or ``gdes``
  (DeBERTaV3: the discriminator's word and position tables are stop-gradient(generator's) + a
  zero-initialised residual, so RTD gradients never reach the generator's tables);
- the sampling temperature (``TEMPERATURE_SCHEDULES``): constant or descending with the optimizer
  step, which the Trainer passes through the generic ``set_training_step`` hook;
- the discriminator head is the registered ``rtd`` target, so other composites can reuse it.

The exported discriminator (``discriminator_backbone_state``) is an ordinary embedding + encoder
state dict that the fine-tuning scripts load.
"""

import math
import os
import re
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig, RtdConfig, find_config_beside, load_config
from uer.errors import ConfigError
from uer.models.electra_config import (CORRUPTIONS, GENERATORS, SHARING, TEMPERATURE_SCHEDULES,  # noqa: F401
                                       check_electra_config, discriminator_config, generator_config)
from uer.models.model import Model
from uer.partitioned import built_whole, full_shape
from uer.registry import PRETRAINERS

class GdesTable(nn.Module):
    """Embedding table = stop_gradient(the generator's table) + own residual (zero at start)."""

    def __init__(self, source: nn.Module, positional: bool):
        super().__init__()
        self._source = [source]             # not registered: the generator owns those parameters
        self.positional = positional        # position table (indexed by position) or token table
        table = source.embedding.weight      # its full shape, even when ZeRO-3 has partitioned it
        self.delta = nn.Parameter(torch.zeros(full_shape(table), dtype=table.dtype, device=table.device))

    def effective_weight(self) -> torch.Tensor:
        return self._source[0].embedding.weight.detach() + self.delta

    @property
    def weight(self) -> torch.Tensor:
        return self.effective_weight()

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        ids = torch.arange(src.size(1), device=src.device).unsqueeze(0) if self.positional else src
        return F.embedding(ids, self.effective_weight())


def gumbel_sample(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """argmax(logits / T + Gumbel noise): an exact sample from softmax(logits / T)."""
    uniform = torch.rand_like(logits, dtype=torch.float32).clamp_(1e-9, 1.0 - 1e-9)
    return (logits.float() / temperature - torch.log(-torch.log(uniform))).argmax(-1)


def swap_tokens(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Shuffle each row's valid entries among themselves (swapped-token detection)."""
    keys = torch.rand(tokens.shape, device=tokens.device).masked_fill(~valid, 2.0)
    shuffled_order = keys.argsort(dim=1)                           # valid slots in random order first
    natural_order = (~valid).to(torch.int8).argsort(dim=1, stable=True)   # valid slots in order first
    out = tokens.clone()
    out.scatter_(1, natural_order, tokens.gather(1, shuffled_order))
    return torch.where(valid, out, tokens)


# ------------------------------------------------------------------------------------------------
# Temperature schedules: T(step) from rtd.temperature_start to rtd.temperature_end over
# rtd.temperature_steps optimizer steps, then constant.  Each maps (start, end, fraction done).
# ------------------------------------------------------------------------------------------------

@TEMPERATURE_SCHEDULES.register("exponential")
def _exponential(start: float, end: float, frac: float) -> float:
    return start * (end / start) ** frac            # geometric: the same ratio every step


@TEMPERATURE_SCHEDULES.register("linear")
def _linear(start: float, end: float, frac: float) -> float:
    return start + (end - start) * frac


@TEMPERATURE_SCHEDULES.register("cosine")
def _cosine(start: float, end: float, frac: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))


def temperature_at(r: RtdConfig, step: int) -> float:
    """The sampling temperature for the optimizer step ``step`` (0 = the first); depends on the step
    only, so a resumed run continues the schedule exactly."""
    if r.temperature_schedule == "constant":
        return r.temperature
    frac = min(max(step, 0) / r.temperature_steps, 1.0)
    if frac >= 1.0:
        return r.temperature_end          # exact, whatever the schedule's rounding
    return TEMPERATURE_SCHEDULES.get(r.temperature_schedule)(r.temperature_start, r.temperature_end, frac)


# ------------------------------------------------------------------------------------------------
# Generators.  A generator part builds its modules onto the pretrainer (so state-dict names stay
# ``generator.*`` / ``unigram_counts``) and proposes a token for every masked slot.
# ------------------------------------------------------------------------------------------------

class GeneratorPart:
    network = False        # an MLM network whose embedding can be shared with the discriminator

    def __init__(self, owner: "ElectraPretrainer", config: ModelConfig, load: bool):
        pass

    def propose(self, owner: "ElectraPretrainer", batch: dict, positions: torch.Tensor,
                originals: torch.Tensor, valid: torch.Tensor, out: dict) -> torch.Tensor:
        raise NotImplementedError

    def flops_per_token(self, owner: "ElectraPretrainer", seq_len: int, predicted_fraction: float) -> float:
        return 0.0


def _sample_logged(owner: "ElectraPretrainer", logits: torch.Tensor, out: dict) -> torch.Tensor:
    temperature = owner.current_temperature()
    out["gen_temperature"] = torch.tensor(temperature, dtype=torch.float32)
    return gumbel_sample(logits, temperature)


@GENERATORS.register("joint")
class JointGenerator(GeneratorPart):
    """A small MLM trained alongside the discriminator (ELECTRA)."""
    network = True

    def __init__(self, owner, config, load):
        owner.generator = Model(generator_config(config))

    def propose(self, owner, batch, positions, originals, valid, out):
        head = owner.generator.target._modules["mlm"]
        logits = head.logits(owner.generator.encode(batch["src"], batch["seg"], lengths=batch.get("seg_lengths")),
                             positions)
        gen = head.scores(logits, batch["mlm_labels"])
        out.update(loss=owner.rtd.gen_weight * gen.pop("loss"), **gen)
        with torch.no_grad():
            return _sample_logged(owner, logits, out)

    def flops_per_token(self, owner, seq_len, predicted_fraction):
        return owner.generator.flops_per_token(seq_len, predicted_fraction)


@GENERATORS.register("frozen")
class FrozenGenerator(GeneratorPart):
    """Fast-ELECTRA: an existing MLM checkpoint as the auxiliary model, never trained.

    It lives in a plain attribute, not as a submodule, so it is not in ``parameters()``,
    ``state_dict()``, the optimizer, DDP or the DeepSpeed engine, ``model.train()`` cannot switch
    it out of eval mode and ``model.to()`` does not move it: it follows the batch's device (and the
    discriminator's dtype) lazily, on the first forward there."""
    network = True

    def __init__(self, owner, config, load):
        # ``load=False``: only the discriminator is wanted (fine-tuning export, meta-device shape
        # checks), so the auxiliary checkpoint need not exist on this machine.
        self.model: Optional[Model] = load_frozen_generator(config) if load else None

    def _ready(self, owner, device: torch.device) -> Model:
        if self.model is None:
            raise RuntimeError("this ElectraPretrainer was built without its frozen generator (load=False)")
        dtype = next((p.dtype for p in owner.discriminator.parameters() if p.is_floating_point()), torch.float32)
        weight = next(self.model.parameters())
        if weight.device != device or weight.dtype != dtype:
            self.model.to(device=device, dtype=dtype)
        return self.model

    def propose(self, owner, batch, positions, originals, valid, out):
        model = self._ready(owner, batch["src"].device)
        head = model.target._modules["mlm"]
        # inference_mode: no autograd record at all.  Its outputs are inference tensors, which
        # autograd may not save for backward; the sampled ids are cloned outside the block so the
        # discriminator's embedding lookup (which saves its indices) gets an ordinary tensor.
        with torch.inference_mode():
            logits = head.logits(model.encode(batch["src"], batch["seg"], lengths=batch.get("seg_lengths")), positions)
            out["mlm_acc"] = head.scores(logits, batch["mlm_labels"])["mlm_acc"]   # logged only
            samples = _sample_logged(owner, logits, out)
        return samples.clone()

    def flops_per_token(self, owner, seq_len, predicted_fraction):
        if self.model is None:
            return 0.0
        return self.model.flops_per_token(seq_len, predicted_fraction) / 3.0   # forward only (2 of 6)


@GENERATORS.register("unigram")
class UnigramGenerator(GeneratorPart):
    """Samples from the counts of the original (unmasked) training tokens seen so far, add-one smoothed."""

    def __init__(self, owner, config, load):
        owner.register_buffer("unigram_counts", torch.ones(config.padded_vocab_size))
        owner.unigram_counts[config.vocab_size:] = 0

    def propose(self, owner, batch, positions, originals, valid, out):
        counts = owner.unigram_counts
        if owner.training:
            counts.index_add_(0, originals[valid], torch.ones_like(originals[valid], dtype=torch.float))
        return torch.multinomial(counts, originals.numel(), replacement=True).view_as(originals)


@GENERATORS.register("random")
class RandomGenerator(GeneratorPart):
    """The collator's random replacement (masking.replace_random = 1): the tokens already there."""

    def propose(self, owner, batch, positions, originals, valid, out):
        return batch["src"].gather(1, positions)


# ------------------------------------------------------------------------------------------------
# Corruption courses: the token each selected slot holds in the discriminator's input.
# ------------------------------------------------------------------------------------------------

@CORRUPTIONS.register("replace")
def _replace(owner: "ElectraPretrainer", batch, positions, originals, valid, out) -> torch.Tensor:
    return owner.generator_part.propose(owner, batch, positions, originals, valid, out)


@CORRUPTIONS.register("swap")
def _swap(owner: "ElectraPretrainer", batch, positions, originals, valid, out) -> torch.Tensor:
    return swap_tokens(originals, valid)


# ------------------------------------------------------------------------------------------------
# Embedding sharing between a trained generator network and the discriminator (for metro: the
# encoder-decoder, whose decoder and tied output read the encoder's table through its embedding).
# ------------------------------------------------------------------------------------------------

@SHARING.register("none")
def _share_none(generator: Model, discriminator: Model) -> None:
    pass


@SHARING.register("shared")
def _share_module(generator: Model, discriminator: Model) -> None:
    discriminator.use_embedding(generator.embedding)


@SHARING.register("gdes")
def _share_gdes(generator: Model, discriminator: Model) -> None:
    for name in ("word", "pos"):
        if name in generator.embedding.names:
            table = GdesTable(generator.embedding._modules[name], positional=name == "pos")
            setattr(discriminator.embedding, name, table)


# ------------------------------------------------------------------------------------------------
# The frozen (Fast-ELECTRA) generator's checkpoint
# ------------------------------------------------------------------------------------------------

def generator_config_path(checkpoint: str) -> Optional[str]:
    """The config written beside an MLM checkpoint (pretrain.py's or scripts/convert.py's)."""
    return find_config_beside(checkpoint)


def load_frozen_generator(config: ModelConfig) -> Model:
    """Build the auxiliary MLM from ``rtd.generator_checkpoint`` (+ its config), strictly, from
    tensors only (weights_only), frozen and in eval mode."""
    from uer.models.weights import load_weights
    r = config.rtd
    path = r.generator_checkpoint
    if not path:
        raise ConfigError("rtd.generator \"frozen\" needs the MLM checkpoint to sample from: set "
                          "\"rtd\": {\"generator_checkpoint\": \"path/to/mlm.bin\"} in the model config or "
                          "pass --rtd_generator_checkpoint path/to/mlm.bin to pretrain.py")
    if not os.path.isfile(path):
        raise ConfigError(f"rtd.generator_checkpoint: {path} does not exist; give the weights file pretrain.py "
                          "wrote for an MLM model (e.g. <output_model_path>) or scripts/convert.py's output")
    config_path = r.generator_config or generator_config_path(path)
    if not config_path:
        raise ConfigError(f"rtd.generator_checkpoint {path}: no model config found beside it (looked for "
                          f"{re.sub(r'-[0-9]+$', '', path)}.config.json and {os.path.splitext(path)[0]}.json); "
                          "set rtd.generator_config to the config it was trained with")
    if not os.path.isfile(config_path):
        raise ConfigError(f"rtd.generator_config: {config_path} does not exist")
    gen_config = load_config(config_path)
    if gen_config.vocab_size == 0:       # a generic config (vocab_size from the vocabulary): this run's
        gen_config.vocab_size = config.vocab_size
    where = f"frozen generator {path} (config {config_path})"
    if "mlm" not in gen_config.target or gen_config.pretrainer:
        raise ConfigError(f"{where}: must be a masked-LM model (target including \"mlm\", no pretrainer), "
                          f"got target {gen_config.target}" +
                          (f", pretrainer \"{gen_config.pretrainer}\"" if gen_config.pretrainer else ""))
    if gen_config.vocab_size != config.vocab_size:
        raise ConfigError(f"{where}: its vocabulary has {gen_config.vocab_size} tokens but the discriminator's "
                          f"has {config.vocab_size}; the generator must be trained with the same vocabulary "
                          "(--vocab_path / --spm_model_path) as this run")
    if gen_config.max_seq_length < config.max_seq_length:
        raise ConfigError(f"{where}: max_seq_length {gen_config.max_seq_length} is shorter than the "
                          f"discriminator's {config.max_seq_length}; lower max_seq_length in the model config")
    # Building it must not shift the discriminator's RNG stream; under ZeRO-3 it is built whole,
    # since it stays outside the engine that gathers partitioned parameters.
    with torch.random.fork_rng(devices=[]), built_whole():
        model = Model(gen_config)
    load_weights(model, path)                    # strict; read_weights uses weights_only / safetensors
    model.requires_grad_(False)
    return model.eval()


@PRETRAINERS.register("electra")
class ElectraPretrainer(nn.Module):
    # The PRETRAINERS hooks (see uer.models.model.Model): config checks, and what a task keeps.
    check_config = staticmethod(check_electra_config)
    backbone_config = staticmethod(discriminator_config)
    # Heads of the discriminator model kept in its exported backbone (the RTD head is pretraining-only).
    exported_targets = ()

    def __init__(self, config: ModelConfig, load_generator: bool = True):
        """``load_generator=False`` skips reading a frozen generator's checkpoint (the exported
        discriminator is all that is wanted)."""
        super().__init__()
        self.config = config
        self.rtd = config.rtd
        self.discriminator = Model(self.backbone_config(config))
        self.generator: Optional[Model] = None
        self._step = 0
        meta = any(p.is_meta for p in self.discriminator.parameters())   # shapes-only build: nothing to read
        part = GENERATORS.get(self.rtd.generator, where="rtd.generator")
        # A plain list so that nn.Module does not register the part (or a frozen model inside it).
        self._parts = [part(self, config, load_generator and not meta)]
        SHARING.get(self.rtd.embedding_sharing, where="rtd.embedding_sharing")(self.generator, self.discriminator)

    @property
    def generator_part(self) -> GeneratorPart:
        return self._parts[0]

    @property
    def frozen_generator(self) -> Optional[Model]:
        part = self.generator_part
        return part.model if isinstance(part, FrozenGenerator) else None

    # -- the Trainer's extension point -------------------------------------------------------------
    def set_training_step(self, step: int) -> None:
        """Called by the Trainer before each optimizer step's micro-batches (0 = the first step)."""
        self._step = int(step)

    def current_temperature(self) -> float:
        return temperature_at(self.rtd, self._step)

    # -- corruption -------------------------------------------------------------------------------
    def corrupt(self, batch: dict, out: Dict[str, torch.Tensor]):
        """The discriminator's input and its labels: the masked slots (``mlm_positions``/``mlm_labels``)
        restored to their original tokens, then filled with the corruption course's proposals.
        Returns (corrupted (B, L), rtd_labels (B, L) bool: corrupted != original on real tokens);
        the generator's loss and metrics go into ``out``.  No gradient flows through the samples."""
        src, seg = batch["src"], batch["seg"]
        positions, labels = batch["mlm_positions"], batch["mlm_labels"]
        valid = labels != -100
        at_positions = src.gather(1, positions)
        originals = torch.where(valid, labels, at_positions)
        course = CORRUPTIONS.get(self.rtd.corruption, where="rtd.corruption")
        samples = course(self, batch, positions, originals, valid, out)
        original_input = src.scatter(1, positions, originals)
        corrupted = original_input.scatter(1, positions, torch.where(valid, samples, originals))
        rtd_labels = (corrupted != original_input) & (seg > 0)
        with torch.no_grad():
            out["replaced_frac"] = (rtd_labels.sum() / valid.sum().clamp(min=1)).float()
        return corrupted, rtd_labels

    @staticmethod
    def add_loss(out: Dict[str, torch.Tensor], weight: float, result: dict) -> None:
        """``weight`` x result's loss added to out's; result's metrics logged beside it."""
        result = dict(result)
        loss = weight * result.pop("loss")
        out["loss"] = out["loss"] + loss if "loss" in out else loss
        out.update(result)

    def forward(self, batch: dict) -> dict:
        out: Dict[str, torch.Tensor] = {}
        corrupted, rtd_labels = self.corrupt(batch, out)
        # seg_lengths: the host-side lengths of the same seg (uer.layers.host_lengths): no mask sync.
        disc = self.discriminator({"src": corrupted, "seg": batch["seg"], "rtd_labels": rtd_labels,
                                   "seg_lengths": batch.get("seg_lengths")})
        self.add_loss(out, self.rtd.disc_weight, disc)
        return out

    # -- export / accounting ---------------------------------------------------------------------
    def discriminator_backbone_state(self) -> Dict[str, torch.Tensor]:
        """The discriminator as an ordinary embedding + encoder state dict (GDES tables summed)."""
        kept = tuple(f"target.{name}." for name in self.exported_targets)
        state = {k: v for k, v in self.discriminator.state_dict().items()
                 if not k.startswith("target.") or k.startswith(kept)}
        for name, module in self.discriminator.embedding.named_children():
            if isinstance(module, GdesTable):
                state.pop(f"embedding.{name}.delta")
                state[f"embedding.{name}.embedding.weight"] = module.effective_weight().detach().clone()
        return state

    def flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        return (self.discriminator.flops_per_token(seq_len, predicted_fraction)
                + self.generator_part.flops_per_token(self, seq_len, predicted_fraction))

    @property
    def encoder(self):
        """The discriminator's encoder (where the trainer switches activation checkpointing)."""
        return self.discriminator.encoder

    @classmethod
    def backbone_state(cls, config: ModelConfig, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Turn a saved ElectraPretrainer state dict into an ordinary backbone state dict."""
        from uer.models.weights import load_weights
        model = cls(config, load_generator=False)
        load_weights(model, state)
        return model.discriminator_backbone_state()


discriminator_backbone_from_state = ElectraPretrainer.backbone_state
