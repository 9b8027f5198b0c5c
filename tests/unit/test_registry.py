"""Registry: register / get / build, duplicate names, unknown-name messages, the shipped registries."""

import pytest

from uer.errors import ConfigError
from uer.registry import EMBEDDINGS, ENCODERS, TARGETS, Registry


def make_registry():
    reg = Registry("widget")

    @reg.register("transformer")
    class Transformer:
        def __init__(self, size, scale=1):
            self.size, self.scale = size, scale

    @reg.register("lstm")
    def lstm(size):
        return ("lstm", size)

    return reg, Transformer, lstm


def test_register_returns_object_unchanged_and_get_finds_it():
    reg, Transformer, lstm = make_registry()
    assert reg.get("transformer") is Transformer
    assert reg.get("lstm") is lstm
    assert "transformer" in reg and "gru" not in reg
    assert reg.names() == ("lstm", "transformer")
    assert list(reg) == ["lstm", "transformer"]
    assert "widget" in repr(reg) and "transformer" in repr(reg)


def test_build_passes_args_and_kwargs():
    reg, Transformer, _ = make_registry()
    obj = reg.build("transformer", 7, scale=3)
    assert isinstance(obj, Transformer) and (obj.size, obj.scale) == (7, 3)
    assert reg.build("lstm", 5) == ("lstm", 5)


def test_duplicate_registration_of_a_different_object_fails():
    reg, _, _ = make_registry()
    with pytest.raises(ValueError) as exc:
        @reg.register("transformer")
        class Other:
            pass
    msg = str(exc.value)
    assert "widget" in msg and "'transformer'" in msg and "twice" in msg
    # The first registration is kept.
    assert reg.get("transformer").__name__ == "Transformer"


def test_registering_the_same_object_again_is_idempotent():
    reg, Transformer, _ = make_registry()
    assert reg.register("transformer")(Transformer) is Transformer
    assert reg.names() == ("lstm", "transformer")


def test_unknown_name_lists_valid_names_and_suggests_close_match():
    reg, _, _ = make_registry()
    with pytest.raises(ConfigError) as exc:
        reg.get("transfomer", where="models/x.json, key 'encoder'")
    msg = str(exc.value)
    assert "unknown widget 'transfomer'" in msg
    assert "models/x.json, key 'encoder'" in msg
    assert "Valid widgets: lstm, transformer." in msg
    assert "Did you mean 'transformer'?" in msg


def test_unknown_name_without_close_match_has_no_suggestion():
    reg, _, _ = make_registry()
    with pytest.raises(ConfigError) as exc:
        reg.build("zzzzzzzz")
    msg = str(exc.value)
    assert "Valid widgets: lstm, transformer." in msg
    assert "Did you mean" not in msg


def test_empty_registry_message():
    reg = Registry("gadget")
    with pytest.raises(ConfigError, match=r"\(none registered\)"):
        reg.get("x")


def test_shipped_registries_are_filled_by_uer_modules():
    import uer.modules  # noqa: F401
    assert {"word", "pos", "seg", "sinusoidalpos"} <= set(EMBEDDINGS.names())
    assert "transformer" in ENCODERS
    assert {"mlm", "sp", "lm", "cls"} <= set(TARGETS.names())
