"""LoRA adapters at generation time (issue 12 item 6): scripts/generate_lm.py / generate_seq2seq.py with
--lora_pretrained_model_path over --load_model_path, and scripts/merge_lora.py.

On a tiny random LLaMA (RoPE, GQA, SwiGLU, RMSNorm) with a random, far from zero adapter: greedy
generation from base + adapter gives exactly the tokens of generation from the merged checkpoint,
and not those of the base alone (so the adapter is really applied).  The merge writes a new file
and refuses to write over any input; an adapter that does not fit the model is one error line."""

import json
import os
import shutil

import torch

from uer.cli.generate_lm import main as generate_lm_main
from uer.cli.generate_seq2seq import main as generate_seq2seq_main
from uer.cli.merge_lora import main as merge_main
from uer.config import config_from_dict
from uer.models import build_model
from uer.models.lora import LoraConfig, apply_lora, lora_config_path, lora_state_dict, save_lora_config
from uer.models.weights import read_weights, save_state, save_weights
from tests.integration.test_generate_scripts import SEQ2SEQ, SPECIALS, WORDS, run_error
from tests.unit.test_generation import randomized

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ("attention.query", "attention.value", "feed_forward.linear_1")
PROMPTS = ["the cat sat on", "", "a big red dog ran", "then"]


def tiny_llama() -> dict:
    config = json.load(open(os.path.join(ROOT, "models", "llama", "tiny.json")))
    config.update(emb_size=32, hidden_size=32, feedforward_size=64, heads_num=4, kv_heads_num=2, layers_num=2,
                  max_seq_length=48, vocab_size=len(SPECIALS + WORDS))
    return config


def write_base_and_adapter(tmp_path, config: dict, name: str, r=4):
    """A random base checkpoint (config beside it) and a random adapter over it (settings beside it)."""
    model = randomized(build_model(config_from_dict(config, "<test>")))
    base = tmp_path / f"{name}.bin"
    save_weights(model, base)
    (tmp_path / f"{name}.bin.config.json").write_text(json.dumps(config))
    lora = LoraConfig(r=r, alpha=8.0, targets=TARGETS)
    apply_lora(model, lora)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():   # lora_B starts at zero (a no-op adapter): make it a large, real change
        for key, value in model.named_parameters():
            if "lora_" in key:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.5)
    adapter = tmp_path / f"{name}_lora.bin"
    save_state(lora_state_dict(model), adapter)
    save_lora_config(lora, lora_config_path(adapter), base_model=str(base))
    return str(base), str(adapter)


def lm_flags(tmp_path, model, out, *extra):
    return ["--load_model_path", model, "--vocab_path", str(tmp_path / "vocab.txt"), "--test_path",
            str(tmp_path / "prompts.txt"), "--prediction_path", str(tmp_path / out), "--seq_length", "24",
            "--top_k", "1", "--batch_size", "3", *extra]


def setup_lm(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    return write_base_and_adapter(tmp_path, tiny_llama(), "llama")


def test_base_plus_adapter_generates_what_the_merged_checkpoint_generates(tmp_path):
    base, adapter = setup_lm(tmp_path)
    merged = str(tmp_path / "merged.safetensors")
    merge_main(["--load_model_path", base, "--lora_pretrained_model_path", adapter, "--output_model_path", merged])
    assert set(read_weights(merged)) == set(read_weights(base))          # plain keys: no adapter left
    assert os.path.isfile(merged + ".config.json")

    with_adapter = generate_lm_main(lm_flags(tmp_path, base, "a.txt", "--lora_pretrained_model_path", adapter))
    from_merged = generate_lm_main(lm_flags(tmp_path, merged, "b.txt"))
    base_only = generate_lm_main(lm_flags(tmp_path, base, "c.txt"))
    assert with_adapter == from_merged
    assert all(len(line.split()) > len(p.split()) for line, p in zip(with_adapter, PROMPTS))
    assert with_adapter != base_only
    # a step checkpoint <adapter>-N finds the run's <adapter>.lora.json
    shutil.copy(adapter, adapter + "-5")
    assert generate_lm_main(lm_flags(tmp_path, base, "s.txt", "--lora_pretrained_model_path", adapter + "-5")) == \
        with_adapter
    # the settings read from <adapter>.lora.json; the same settings given as flags (no file) agree
    os.rename(lora_config_path(adapter), str(tmp_path / "moved.lora.json"))
    by_flags = generate_lm_main(lm_flags(tmp_path, base, "d.txt", "--lora_pretrained_model_path", adapter,
                                         "--use_lora", "--lora_r", "4", "--lora_alpha", "8",
                                         "--lora_targets", ",".join(TARGETS)))
    assert by_flags == with_adapter


def test_merge_refuses_to_write_over_an_input(tmp_path, capsys):
    base, adapter = setup_lm(tmp_path)
    before = {path: open(path, "rb").read() for path in (base, adapter, base + ".config.json")}
    for output in (base, adapter):
        message = run_error(merge_main, ["--load_model_path", base, "--lora_pretrained_model_path", adapter,
                                         "--output_model_path", output], capsys)
        assert "is the same file as" in message and "new path" in message
    # the files read beside the inputs count as inputs too: the adapter's settings, the base's config
    for output in (lora_config_path(adapter), base + ".config.json"):
        message = run_error(merge_main, ["--load_model_path", base, "--lora_pretrained_model_path", adapter,
                                         "--output_model_path", output], capsys)
        assert "is the same file as" in message
    before[lora_config_path(adapter)] = open(lora_config_path(adapter), "rb").read()
    assert all(open(path, "rb").read() == data for path, data in before.items())


def test_a_mismatched_adapter_is_one_clear_error(tmp_path, capsys):
    base, adapter = setup_lm(tmp_path)
    # a flag that contradicts the adapter's recorded settings
    message = run_error(generate_lm_main, lm_flags(tmp_path, base, "a.txt", "--lora_pretrained_model_path", adapter,
                                                   "--lora_r", "8"), capsys)
    assert "--lora_r 8" in message and "r = 4" in message
    # no settings file and the wrong rank: the loader names the shapes and --lora_r
    os.remove(lora_config_path(adapter))
    message = run_error(generate_lm_main, lm_flags(tmp_path, base, "b.txt", "--lora_pretrained_model_path", adapter,
                                                   "--use_lora", "--lora_r", "8", "--lora_targets", ",".join(TARGETS)),
                        capsys)
    assert "does not fit" in message and "--lora_r" in message and "shape" in message
    # an adapter of another model (wider layers) given to merge_lora
    _, other = write_base_and_adapter(tmp_path, {**tiny_llama(), "hidden_size": 64, "emb_size": 64}, "wide")
    message = run_error(merge_main, ["--load_model_path", base, "--lora_pretrained_model_path", other,
                                     "--output_model_path", str(tmp_path / "m.bin")], capsys)
    assert "does not fit" in message and not os.path.exists(tmp_path / "m.bin")
    # no settings file, no --use_lora
    message = run_error(generate_lm_main, lm_flags(tmp_path, base, "c.txt", "--lora_pretrained_model_path", adapter),
                        capsys)
    assert "--use_lora" in message


def test_generate_seq2seq_with_an_adapter_equals_the_merged_model(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    (tmp_path / "src.txt").write_text("the cat sat on a mat\ndog\nbig red green blue\n")
    config = {**SEQ2SEQ, "vocab_size": len(SPECIALS + WORDS)}
    base, adapter = write_base_and_adapter(tmp_path, config, "mt")
    merged = str(tmp_path / "merged.bin")
    merge_main(["--load_model_path", base, "--lora_pretrained_model_path", adapter, "--output_model_path", merged])

    def flags(model, out, *extra):
        return ["--load_model_path", model, "--vocab_path", str(tmp_path / "vocab.txt"), "--test_path",
                str(tmp_path / "src.txt"), "--prediction_path", str(tmp_path / out), "--seq_length", "16",
                "--tgt_seq_length", "12", "--top_k", "1", *extra]
    with_adapter = generate_seq2seq_main(flags(base, "a.txt", "--lora_pretrained_model_path", adapter))
    assert with_adapter == generate_seq2seq_main(flags(merged, "b.txt"))
    assert with_adapter != generate_seq2seq_main(flags(base, "c.txt"))
