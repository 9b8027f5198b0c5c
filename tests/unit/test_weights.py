"""Weight files: round trips, strict matching with useful messages, prefixes, corrupt and unsafe files."""

import os
import pathlib

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import CheckpointError
from uer.models import build_model
from uer.models.weights import load_weights, model_state, read_weights, save_weights

TINY = {"embedding": ["word", "pos", "seg"], "vocab_size": 100, "emb_size": 32, "hidden_size": 32,
        "feedforward_size": 64, "heads_num": 2, "layers_num": 2, "max_seq_length": 16, "dropout": 0.0,
        "target": ["mlm", "sp"]}


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(config_from_dict({**TINY, **kw}, "test"))


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def formats():
    out = ["w.bin"]
    try:
        import safetensors  # noqa: F401
        out.append("w.safetensors")
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("name", formats())
def test_round_trip(tmp_path, name):
    src, dst = tiny_model(0), tiny_model(1)
    assert not torch.equal(src.embedding.word_weight(), dst.embedding.word_weight())
    path = str(tmp_path / name)
    save_weights(src, path)
    assert os.path.isfile(path)
    assert os.listdir(tmp_path) == [name]   # no temporary file left behind
    assert load_weights(dst, path) == []
    assert_same_state(src, dst)
    # tied output still shares the (newly loaded) embedding table
    assert dst.target.mlm.output_weight_tensor().data_ptr() == dst.embedding.word_weight().data_ptr()
    state = read_weights(path)
    assert set(state) == set(src.state_dict())
    assert all(v.device.type == "cpu" for v in state.values())


def test_bin_save_creates_the_directory(tmp_path):
    path = str(tmp_path / "a" / "b" / "w.bin")
    save_weights(tiny_model(), path)
    assert set(read_weights(path)) == set(tiny_model().state_dict())


def test_safetensors_save_creates_the_directory(tmp_path):
    pytest.importorskip("safetensors")
    path = str(tmp_path / "a" / "w.safetensors")
    save_weights(tiny_model(), path)
    assert os.path.isfile(path)


def test_model_state_is_detached_cpu():
    state = model_state(tiny_model())
    assert all(not v.requires_grad and v.device.type == "cpu" for v in state.values())


def test_load_from_state_dict(tmp_path):
    src, dst = tiny_model(0), tiny_model(1)
    assert load_weights(dst, src.state_dict()) == []
    assert_same_state(src, dst)


def test_full_training_state_file_is_accepted(tmp_path):
    src, dst = tiny_model(0), tiny_model(1)
    path = str(tmp_path / "ckpt.pt")
    torch.save({"model": model_state(src), "step": 7}, path)
    load_weights(dst, path)
    assert_same_state(src, dst)


def test_strict_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    src = tiny_model(0)
    state = model_state(src)
    del state["target.sp.linear_2.bias"]
    state["target.extra.weight"] = torch.zeros(3)
    state["embedding.seg.embedding.weight"] = torch.zeros(4, 32)
    path = str(tmp_path / "w.bin")
    torch.save(state, path)
    dst = tiny_model(1)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as exc:
        load_weights(dst, path)
    msg = str(exc.value)
    assert path in msg
    assert "missing from the file: target.sp.linear_2.bias" in msg
    assert "not in the model: target.extra.weight" in msg
    assert "embedding.seg.embedding.weight: file (4, 32) vs model (3, 32)" in msg
    assert "--config_path" in msg
    # nothing was loaded
    for k, v in dst.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_tied_weights_under_an_untied_config_say_which_key_to_add(tmp_path):
    """A file that omits tie_weights means false (UER-py's default): loading weights trained tied into it
    names the key to add rather than only the missing output matrix."""
    path = str(tmp_path / "w.bin")
    save_weights(tiny_model(0, tie_weights=True), path)
    with pytest.raises(CheckpointError) as exc:
        load_weights(tiny_model(1, tie_weights=False), path)
    msg = str(exc.value)
    assert "missing from the file: target.mlm.output_weight" in msg and '"tie_weights": true' in msg


def test_many_missing_keys_are_shortened():
    dst = tiny_model()
    with pytest.raises(CheckpointError, match=r"\(\+\d+ more\)") as exc:
        load_weights(dst, {})
    assert "<state dict>" in str(exc.value)


def test_shape_mismatch_is_not_excused_by_prefixes():
    state = model_state(tiny_model())
    state["target.sp.linear_2.weight"] = torch.zeros(3, 32)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_weights(tiny_model(), state, allow_missing=("target.",), ignore_unexpected=("target.",))


def test_allow_missing_prefix():
    pretrained = tiny_model(0, target=["mlm"])        # no sp head in the file
    dst = tiny_model(1)
    sp_before = dst.target.sp.linear_1.weight.clone()
    with pytest.raises(CheckpointError, match="target.sp"):
        load_weights(dst, model_state(pretrained))
    ignored = load_weights(dst, model_state(pretrained), allow_missing=("target.sp.",))
    assert ignored == []
    assert torch.equal(dst.embedding.word_weight(), pretrained.embedding.word_weight())
    assert torch.equal(dst.target.sp.linear_1.weight, sp_before)   # left as initialised


def test_ignore_unexpected_prefix_returns_ignored_keys():
    pretrained = tiny_model(0)
    dst = tiny_model(1, target=["mlm"])
    with pytest.raises(CheckpointError, match="not in the model"):
        load_weights(dst, model_state(pretrained))
    ignored = load_weights(dst, model_state(pretrained), ignore_unexpected=("target.sp.",))
    assert sorted(ignored) == sorted(k for k in pretrained.state_dict() if k.startswith("target.sp."))
    assert len(ignored) == 4
    assert torch.equal(dst.encoder.layers[1].norm_2.weight, pretrained.encoder.layers[1].norm_2.weight)


def test_missing_file():
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tiny_model(), "/nonexistent/w.bin")


@pytest.mark.parametrize("name", formats())
def test_corrupt_file_is_a_checkpoint_error(tmp_path, name):
    path = tmp_path / name
    save_weights(tiny_model(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])       # truncated
    with pytest.raises(CheckpointError) as exc:
        load_weights(tiny_model(), str(path))
    assert str(path) in str(exc.value) and "cannot read checkpoint" in str(exc.value)
    path.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(CheckpointError):
        read_weights(str(path))


def test_not_a_dict_of_tensors(tmp_path):
    path = str(tmp_path / "w.bin")
    torch.save({"a": 1, "b": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a dict of tensors"):
        read_weights(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="not a dict of tensors"):
        read_weights(path)


def _touch(path):
    pathlib.Path(path).write_text("code ran")
    return {}


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def test_pickled_code_is_not_executed(tmp_path):
    marker = tmp_path / "marker"
    path = str(tmp_path / "evil.bin")
    torch.save({"w": torch.zeros(2), "x": Evil(str(marker))}, path)
    with pytest.raises(CheckpointError) as exc:
        load_weights(tiny_model(), path)
    assert path in str(exc.value)
    assert not marker.exists()


def test_pathlike_paths(tmp_path):
    src, dst = tiny_model(0), tiny_model(1)
    path = tmp_path / "w.bin"
    save_weights(src, path)
    load_weights(dst, path)
    assert_same_state(src, dst)
