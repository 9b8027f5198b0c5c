"""PRETRAINERS: the plain model and ELECTRA are registry entries; a new composite is one class plus
one registration; backbone_config / backbone_source say what a task keeps; uer.config imports no
module package (the module-name checks are registered by the modules)."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import uer.modules  # noqa: F401
from uer.config import config_from_dict, load_config
from uer.errors import ConfigError
from uer.models import PLAIN, Model, build_model
from uer.models.electra import ElectraPretrainer
from uer.models.pretrained import backbone_config, backbone_source
from uer.models.weights import save_weights
from uer.registry import PRETRAINERS

TINY = dict(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, layers_num=1, max_seq_length=32,
            vocab_size=100, dropout=0.0)
ELECTRA = dict(TINY, target=["mlm", "rtd"], pretrainer="electra")


def test_plain_and_electra_are_registered_and_built_by_name():
    assert PLAIN == "" and set(PRETRAINERS.names()) >= {"", "electra"}
    assert type(build_model(config_from_dict(TINY))) is Model
    assert isinstance(build_model(config_from_dict(ELECTRA)), ElectraPretrainer)


def test_unknown_pretrainer_fails_at_load_listing_the_registered_ones(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(dict(ELECTRA, pretrainer="electar")))
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    msg = str(e.value)
    assert str(path) in msg and "key 'pretrainer'" in msg and "unknown pretrainer 'electar'" in msg
    assert 'Valid pretrainers: "", electra' in msg and "Did you mean 'electra'" in msg


def test_unknown_rtd_part_fails_at_load_with_the_registry_message():
    with pytest.raises(ConfigError, match=r"unknown rtd generator 'jiont' \(m.json, key 'rtd.generator'\).*"
                                          r"Did you mean 'joint'"):
        config_from_dict(dict(ELECTRA, rtd={"generator": "jiont"}), "m.json")


class ToyPretrainer(nn.Module):
    """A composite in one class: two plain models whose losses are averaged."""

    def __init__(self, config):
        super().__init__()
        self.a = Model(backbone_config(config))
        self.b = Model(backbone_config(config))

    @staticmethod
    def check_config(config, source):
        if config.layers_num > 2:
            raise ConfigError(f"{source}, key 'layers_num': the toy pretrainer is at most 2 layers deep")

    def forward(self, batch):
        return {"loss": 0.5 * (self.a(batch)["loss"] + self.b(batch)["loss"])}


@pytest.fixture
def toy_registered():
    PRETRAINERS.register("toy")(ToyPretrainer)
    yield
    PRETRAINERS._entries.pop("toy")


def test_a_new_pretrainer_is_one_class_and_one_registration(toy_registered):
    config = config_from_dict(dict(TINY, target=["mlm"], pretrainer="toy"))
    model = build_model(config)
    assert isinstance(model, ToyPretrainer)
    batch = {"src": torch.randint(5, 100, (2, 8)), "seg": torch.ones(2, 8, dtype=torch.long),
             "mlm_positions": torch.tensor([[1, 2], [3, 4]]), "mlm_labels": torch.tensor([[7, 8], [9, -100]])}
    assert torch.isfinite(model(batch)["loss"])
    with pytest.raises(ConfigError, match="toy pretrainer is at most 2"):    # its own check runs at load
        config_from_dict(dict(TINY, target=["mlm"], pretrainer="toy", layers_num=3), "toy.json")
    # No backbone hooks: the backbone is the config itself, made plain; the weights file as it is.
    plain = backbone_config(config)
    assert plain.pretrainer == "" and plain.target == ["mlm"] and config.pretrainer == "toy"
    assert backbone_source(config, "some.bin") == "some.bin"


def test_backbone_config_of_electra_is_the_plain_discriminator():
    config = config_from_dict(ELECTRA)
    plain = backbone_config(config)
    assert (plain.pretrainer, plain.target, plain.hidden_size) == ("", ["rtd"], 32)
    assert config.pretrainer == "electra" and config.target == ["mlm", "rtd"]   # untouched
    plain.masking.mask_prob = 0.5                                               # nothing shared
    assert config.masking.mask_prob == 0.15
    config_from_dict(plain.to_dict())                                           # a valid plain config


def test_backbone_source_exports_the_electra_discriminator(tmp_path):
    config = config_from_dict(ELECTRA)
    model = build_model(config)
    save_weights(model, str(tmp_path / "e.bin"))
    state = backbone_source(config, str(tmp_path / "e.bin"))
    backbone = Model(backbone_config(config), with_target=False)
    backbone.load_state_dict(state)                                             # strict
    assert torch.equal(backbone.embedding.word.embedding.weight, model.discriminator.embedding.word.embedding.weight)
    assert type(build_model(config, with_target=False)) is Model


def test_uer_config_imports_no_module_package():
    code = ("import sys, uer.config\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in (['uer', 'modules'], ['uer', 'models'], "
            "['uer', 'embeddings'], ['uer', 'encoders'], ['uer', 'targets']))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
