"""ELECTRA-family composite pretrainer: a generator corrupts the input, a discriminator detects
which tokens were replaced (Clark et al. 2020).

Parts, each a config choice (``"pretrainer": "electra"`` plus the ``"rtd"`` section):
- generator: ``joint`` (a small MLM trained alongside, sampled with Gumbel-max at a temperature,
  no gradient through the sample), ``unigram`` (samples from token frequencies counted on the
  training data so far) or ``random`` (the collator's random replacement; no network);
- corruption: ``replace`` (the generator's samples) or ``swap`` (the selected tokens shuffled
  among themselves);
- embedding sharing: ``none``, ``shared`` (one embedding module) or ``gdes`` (DeBERTaV3: the
  discriminator's word and position tables are stop-gradient(generator's) + a zero-initialised
  residual, so RTD gradients never reach the generator's tables);
- the discriminator head is the registered ``rtd`` target, so other composites can reuse it.

The exported discriminator (``discriminator_backbone_state``) is an ordinary embedding + encoder
state dict that the fine-tuning scripts load.
"""

import dataclasses
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.models.model import Model


class GdesTable(nn.Module):
    """Embedding table = stop_gradient(the generator's table) + own residual (zero at start)."""

    def __init__(self, source: nn.Module, positional: bool):
        super().__init__()
        self._source = [source]             # not registered: the generator owns those parameters
        self.positional = positional        # position table (indexed by position) or token table
        self.delta = nn.Parameter(torch.zeros_like(source.embedding.weight))

    def effective_weight(self) -> torch.Tensor:
        return self._source[0].embedding.weight.detach() + self.delta

    @property
    def weight(self) -> torch.Tensor:
        return self.effective_weight()

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        ids = torch.arange(src.size(1), device=src.device).unsqueeze(0) if self.positional else src
        return F.embedding(ids, self.effective_weight())


def generator_config(config: ModelConfig) -> ModelConfig:
    """The generator: the discriminator's shape scaled by ``rtd.generator_size_multiplier`` in width,
    FFN and heads (same depth unless ``rtd.generator_layers_num``), an MLM target, and the
    discriminator's embedding width so that tables can be shared."""
    r = config.rtd
    heads = max(1, round(config.heads_num * r.generator_size_multiplier))
    hidden = round(config.hidden_size * r.generator_size_multiplier)
    return dataclasses.replace(
        config, hidden_size=hidden, heads_num=heads, attention_head_size=0,
        feedforward_size=max(1, round(config.feedforward_size * r.generator_size_multiplier)),
        layers_num=r.generator_layers_num or config.layers_num,
        factorized_embedding_parameterization=config.emb_size != hidden,
        target=["mlm"], pretrainer="")


def discriminator_config(config: ModelConfig) -> ModelConfig:
    return dataclasses.replace(config, target=["rtd"], pretrainer="")


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


class ElectraPretrainer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.rtd = config.rtd
        self.discriminator = Model(discriminator_config(config))
        self.generator = Model(generator_config(config)) if self.rtd.generator == "joint" else None
        if self.generator is not None:
            if self.rtd.embedding_sharing == "shared":
                self.discriminator.embedding = self.generator.embedding
            elif self.rtd.embedding_sharing == "gdes":
                for name in ("word", "pos"):
                    if name in self.generator.embedding.names:
                        table = GdesTable(self.generator.embedding._modules[name], positional=name == "pos")
                        setattr(self.discriminator.embedding, name, table)
        if self.rtd.generator == "unigram":
            # Token counts of the original (unmasked) training tokens seen so far, add-one smoothed.
            self.register_buffer("unigram_counts", torch.ones(config.padded_vocab_size))
            self.unigram_counts[config.vocab_size:] = 0

    # -- corruption -------------------------------------------------------------------------------
    def _samples(self, batch: dict, positions: torch.Tensor, originals: torch.Tensor,
                 valid: torch.Tensor, out: dict) -> torch.Tensor:
        if self.rtd.corruption == "swap":
            return swap_tokens(originals, valid)
        if self.generator is not None:
            head = self.generator.target._modules["mlm"]
            logits = head.logits(self.generator.encode(batch["src"], batch["seg"]), positions)
            gen = head.scores(logits, batch["mlm_labels"])
            out.update(loss=self.rtd.gen_weight * gen.pop("loss"), **gen)
            with torch.no_grad():
                return gumbel_sample(logits, self.rtd.temperature)
        if self.rtd.generator == "unigram":
            if self.training:
                self.unigram_counts.index_add_(0, originals[valid], torch.ones_like(originals[valid], dtype=torch.float))
            return torch.multinomial(self.unigram_counts, originals.numel(), replacement=True).view_as(originals)
        return batch["src"].gather(1, positions)     # "random": the collator already replaced them

    def forward(self, batch: dict) -> dict:
        src, seg = batch["src"], batch["seg"]
        positions, labels = batch["mlm_positions"], batch["mlm_labels"]
        valid = labels != -100
        at_positions = src.gather(1, positions)
        originals = torch.where(valid, labels, at_positions)
        out: Dict[str, torch.Tensor] = {}
        samples = self._samples(batch, positions, originals, valid, out)
        original_input = src.scatter(1, positions, originals)
        corrupted = original_input.scatter(1, positions, torch.where(valid, samples, originals))
        rtd_labels = (corrupted != original_input) & (seg > 0)
        disc = self.discriminator({"src": corrupted, "seg": seg, "rtd_labels": rtd_labels})
        disc_loss = self.rtd.disc_weight * disc.pop("loss")
        out["loss"] = out["loss"] + disc_loss if "loss" in out else disc_loss
        out.update(disc)
        with torch.no_grad():
            out["replaced_frac"] = (rtd_labels.sum() / valid.sum().clamp(min=1)).float()
        return out

    # -- export / accounting ---------------------------------------------------------------------
    def discriminator_backbone_state(self) -> Dict[str, torch.Tensor]:
        """The discriminator as an ordinary embedding + encoder state dict (GDES tables summed)."""
        state = {k: v for k, v in self.discriminator.state_dict().items() if not k.startswith("target.")}
        for name, module in self.discriminator.embedding.named_children():
            if isinstance(module, GdesTable):
                state.pop(f"embedding.{name}.delta")
                state[f"embedding.{name}.embedding.weight"] = module.effective_weight().detach().clone()
        return state

    def flops_per_token(self, seq_len: int, predicted_fraction: float = 0.15) -> float:
        total = self.discriminator.flops_per_token(seq_len, predicted_fraction)
        if self.generator is not None:
            total += self.generator.flops_per_token(seq_len, predicted_fraction)
        return total

    @property
    def encoder(self):
        """The discriminator's encoder (where the trainer switches activation checkpointing)."""
        return self.discriminator.encoder


def discriminator_backbone_from_state(config: ModelConfig, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Turn a saved ElectraPretrainer state dict into an ordinary backbone state dict."""
    from uer.models.weights import load_weights
    model = ElectraPretrainer(config)
    load_weights(model, state)
    return model.discriminator_backbone_state()
