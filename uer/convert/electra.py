"""ELECTRA: ElectraForPreTraining (the discriminator) <-> a uer model with the rtd target,
ElectraForMaskedLM (the generator) <-> a uer model with the mlm target, ElectraModel <-> embedding +
encoder.

The encoder layer is BERT's.  The embeddings are ALBERT-style factorised when embedding_size differs
from hidden_size (``electra.embeddings_project`` = our ``encoder.linear``), but never shared across
layers.  The discriminator head (dense -> hidden_act -> dense to one logit) is our rtd target; the
generator head (dense to embedding_size -> erf GELU -> LayerNorm -> tied decoder + bias) is our mlm
target, whose activation is hidden_act, so generators must use gelu.

ElectraForSequenceClassification is refused: its head is dense -> GELU -> out_proj, ours
(``ClassificationHead``) is dense -> tanh -> linear; the weights would map but the outputs would not.
"""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.bert import BERT_SHAPE, BertConverter
from uer.convert.converter import Variant, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Row, Tied, linear, param
from uer.convert.transforms import IDENTITY, VOCAB_ROWS
from uer.errors import ConfigError

CLASSIFIER_REFUSAL = (
    "ElectraForSequenceClassification cannot be converted exactly: its head is dense -> GELU -> "
    "out_proj on the first token, uer's classifier head is dense -> tanh -> linear_2. Convert the "
    "backbone instead (--architecture ElectraModel, with --discard classifier.) and fine-tune a new "
    "head, or convert the discriminator (ElectraForPreTraining)")


@CONVERTERS.register("electra")
class ElectraConverter(BertConverter):
    family = "electra"
    model_type = "electra"
    base_prefix = "electra."
    variants = (
        Variant("ElectraForPreTraining", "pretrain", ("rtd",)),
        Variant("ElectraForMaskedLM", "pretrain", ("mlm",)),
        Variant("ElectraModel", "backbone", prefixed=False),
    )
    default_targets = ("rtd",)
    data_processor = "mlm"
    position_transform = IDENTITY

    refused = {"ElectraForSequenceClassification": CLASSIFIER_REFUSAL}

    def variant_for(self, kind: str, targets) -> Variant:
        if kind == "classifier":
            raise ConfigError(CLASSIFIER_REFUSAL.replace("cannot be converted exactly",
                                                         "cannot hold a uer classifier"))
        return super().variant_for(kind, targets)

    # ---------------------------------------------------------------- configs
    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        out = super().config_to_uer(hf, variant)
        emb = int(hf.get("embedding_size") or hf["hidden_size"])
        out.update(emb_size=emb, factorized_embedding_parameterization=emb != hf["hidden_size"])
        if "mlm" in variant.targets and out["hidden_act"] != "gelu":
            raise ConfigError(f"config.json: hidden_act '{hf.get('hidden_act')}' — the ELECTRA generator "
                              "head always uses erf GELU while uer's mlm target uses hidden_act; this "
                              "checkpoint cannot be converted exactly")
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require(config, {**BERT_SHAPE, "factorized_embedding_parameterization":
                              config.emb_size != config.hidden_size})
        if config.head_size * config.heads_num != config.hidden_size:
            self.require(config, {"attention_head_size": 0})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        if "mlm" in variant.targets:
            self.require(config, {"hidden_act": "gelu"})
        out = super().config_to_hf(config, variant, special)
        out.update(embedding_size=config.emb_size, hidden_act=uer_act(config.hidden_act))
        return out

    # ---------------------------------------------------------------- tables
    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        rows = super().backbone_rows(config)
        if config.factorized_embedding_parameterization:
            rows.append(linear("encoder.linear", "embeddings_project"))
        return rows

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        if variant.kind == "backbone":
            return []
        if variant.targets == ("rtd",):
            return [linear("target.rtd.linear_1", "discriminator_predictions.dense"),
                    linear("target.rtd.linear_2", "discriminator_predictions.dense_prediction")]
        rows: List[Row] = [linear("target.mlm.linear_1", "generator_predictions.dense"),
                           linear("target.mlm.norm", "generator_predictions.LayerNorm"),
                           param("target.mlm.output_bias", "generator_lm_head.bias", VOCAB_ROWS)]
        if config.tie_weights:
            rows.append(Tied("generator_lm_head.weight", self.base_prefix + "embeddings.word_embeddings.weight"))
        else:
            rows.append(param("target.mlm.output_weight", "generator_lm_head.weight", VOCAB_ROWS))
        return rows
