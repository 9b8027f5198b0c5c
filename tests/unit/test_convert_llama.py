"""LLaMA / Mistral / Qwen2 / BLOOM conversion, proven numerically.

For each class a random tiny ``transformers`` model (fp32) is saved and converted to uer: logits agree to
1e-5 on a right-padded batch, and changing the config key the case exercises (rope theta, rope scaling,
ALiBi ...) breaks the agreement, so the key is really read.  Exported back, every tensor equals the original,
transformers loads the directory with no missing or unexpected keys and the same rotary settings.  Greedy
continuations from uer.generation (batched, left-padded, KV cache) equal ``generate(do_sample=False)``.
One case runs the real ``scripts/convert.py`` and ``scripts/generate_lm.py`` with a converted LLaMA-3
style tokenizer.json.
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from uer.config import load_config  # noqa: E402
from uer.convert import build_uer_model  # noqa: E402
from uer.convert.cli import main as convert_main  # noqa: E402
from uer.errors import ConfigError  # noqa: E402
from uer.generation import GenerationSettings, generate_lm  # noqa: E402
from uer.models.weights import load_weights  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
V = 99            # not a multiple of 64: the vocabulary padding is exercised
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLAMA = dict(vocab_size=V, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64, bos_token_id=1, eos_token_id=2)


# name: (the HF model, a uer config change that must break parity: proof that the key is read)
CASES = {
    "llama-gqa-untied-llama3-scaling": (
        lambda: T.LlamaForCausalLM(T.LlamaConfig(**LLAMA, num_key_value_heads=2, tie_word_embeddings=False,
                                                 rope_theta=500000.0, rope_scaling={
                                                     "rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
        lambda c: dataclasses.replace(c, rope_scaling=dataclasses.replace(c.rope_scaling, type=""))),
    "llama-mqa-tied-linear-scaling-head-dim": (
        lambda: T.LlamaForCausalLM(T.LlamaConfig(**LLAMA, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True,
                                                 rope_scaling={"type": "linear", "factor": 2.0})),
        lambda c: dataclasses.replace(c, rope_scaling=dataclasses.replace(c.rope_scaling, factor=1.0))),
    "mistral-gqa": (
        lambda: T.MistralForCausalLM(T.MistralConfig(**LLAMA, num_key_value_heads=2, sliding_window=None)),
        lambda c: dataclasses.replace(c, rope_theta=1000.0)),
    "qwen2-qkv-bias-tied": (
        lambda: T.Qwen2ForCausalLM(T.Qwen2Config(**LLAMA, num_key_value_heads=2, tie_word_embeddings=True,
                                                 rope_theta=1000000.0)),
        lambda c: dataclasses.replace(c, rope_theta=10000.0)),
    "bloom-alibi": (
        lambda: T.BloomForCausalLM(T.BloomConfig(vocab_size=V, hidden_size=32, n_layer=2, n_head=4,
                                                 bos_token_id=1, eos_token_id=2)),
        lambda c: dataclasses.replace(c, alibi_position_embedding=False)),
}


def randomize(model, seed=0):
    """Initialisation hides mapping bugs (unit norms, zero biases): make every parameter distinct."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            if p.dim() == 1 and ("norm" in name or "ln_f" in name) and name.endswith("weight"):
                p.add_(1.0)
    model.generation_config.eos_token_id = None      # both sides generate the full length
    return model.eval()


def batch(seed=1):
    """Right-padded ids: on a causal model the padding never reaches the real positions."""
    g = torch.Generator().manual_seed(seed)
    lengths = [14, 9, 5]
    src = torch.randint(3, V, (len(lengths), max(lengths)), generator=g)
    keep = torch.zeros_like(src, dtype=torch.bool)
    for b, n in enumerate(lengths):
        keep[b, :n] = True
    src[~keep] = 0
    return src, keep


def uer_logits(model, src, keep):
    with torch.no_grad():
        return model.target.lm.logits(model.encode(src, keep.long()))[..., :V]


def load_uer(model_path, config):
    model = build_uer_model(config, "pretrain")
    load_weights(model, model_path)
    return model.eval()


@pytest.mark.parametrize("case", list(CASES))
def test_parity_round_trip_and_greedy_generation(case, tmp_path):
    build, break_key = CASES[case]
    torch.manual_seed(0)
    hf_model = randomize(build())
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    hf_model.save_pretrained(hf_dir)
    model_path, config_path = str(tmp_path / "uer.bin"), str(tmp_path / "uer.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir), "--output_model_path", model_path])
    config = load_config(config_path)
    ours = load_uer(model_path, config)

    src, keep = batch()
    with torch.no_grad():
        theirs = hf_model(input_ids=src, attention_mask=keep.long()).logits
    diff = float((uer_logits(ours, src, keep) - theirs)[keep].abs().max())
    print(f"\n{case}: max |uer - hf| logits = {diff:.2e}")
    assert diff <= TOL
    broken = load_uer(model_path, break_key(config))
    assert float((uer_logits(broken, src, keep) - theirs)[keep].abs().max()) > 1e-3

    # Greedy: our batched, left-padded, cached generation = transformers one prompt at a time.
    prompts = [[5, 17, 33, 8], [40, 2, 71, 9, 11, 60, 3], [90]]
    settings = GenerationSettings(max_new_tokens=10, top_k=1, eos_id=None, pad_id=0)
    generated = generate_lm(ours, prompts, settings)
    for prompt, new in zip(prompts, generated):
        ids = torch.tensor([prompt])
        expected = hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                                     pad_token_id=0)[0, len(prompt):].tolist()
        assert new == expected, (prompt, new, expected)

    # uer -> HF: every tensor back exactly; transformers loads it strictly with the same rotary settings.
    family = case.split("-")[0]
    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(back_dir), "--architecture", family])
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(back_dir / "model.safetensors")
    assert sorted(exported) == sorted(original)
    assert not [k for k in original if not torch.equal(original[k], exported[k])]
    reloaded, info = T.AutoModelForCausalLM.from_pretrained(back_dir, output_loading_info=True)
    assert type(reloaded) is type(hf_model)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    for key in ("rope_parameters", "num_key_value_heads", "head_dim", "tie_word_embeddings", "n_head"):
        mine, source = (getattr(c.config, key, None) for c in (reloaded, hf_model))
        if key == "rope_parameters":      # transformers keeps a legacy "type" spelling beside "rope_type"
            mine, source = ({k: v for k, v in (p or {}).items() if k != "type"} for p in (mine, source))
        assert mine == source, key
    with torch.no_grad():
        again = reloaded.eval()(input_ids=src, attention_mask=keep.long()).logits
    assert torch.equal(again, theirs)


def test_backbone_class_and_refusals(tmp_path):
    """LlamaModel converts as a backbone; what uer cannot compute the same is refused by name."""
    torch.manual_seed(0)
    base = randomize(T.LlamaForCausalLM(T.LlamaConfig(**LLAMA, num_key_value_heads=2))).model
    base.save_pretrained(tmp_path / "base")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "base"),
                  "--output_model_path", str(tmp_path / "base.bin")])
    config = load_config(str(tmp_path / "base.json"))
    model = build_uer_model(config, "backbone")
    load_weights(model, str(tmp_path / "base.bin"))
    src, keep = batch()
    with torch.no_grad():
        ours = model.eval().encoder(model.embedding(src, keep.long()), keep.long())
        theirs = base(input_ids=src, attention_mask=keep.long()).last_hidden_state
    assert float((ours - theirs)[keep].abs().max()) <= TOL

    def refused(cls, cfg, **kw):
        directory = tmp_path / cls.__name__
        randomize(cls(cfg(**{**LLAMA, **kw}))).save_pretrained(directory)
        with pytest.raises(SystemExit):
            convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(directory),
                          "--output_model_path", str(tmp_path / "x.bin")])
        assert not (tmp_path / "x.bin").exists()

    refused(T.Qwen2ForCausalLM, T.Qwen2Config, use_sliding_window=True, sliding_window=16,   # a window on layer 0
            layer_types=["sliding_attention", "full_attention"])                            # only (not a suffix)
    refused(T.LlamaForCausalLM, T.LlamaConfig, attention_bias=True)
    refused(T.LlamaForCausalLM, T.LlamaConfig, rope_scaling={"rope_type": "yarn", "factor": 2.0,
                                                             "original_max_position_embeddings": 32})
    with open(tmp_path / "base.json") as f:
        data = json.load(f)
    data["rope_scaling"] = {"type": "ntk", "factor": 2.0}
    with open(tmp_path / "ntk.json", "w") as f:
        json.dump(data, f)
    from uer.convert.llama import write_rope
    with pytest.raises(ConfigError, match="ntk"):
        write_rope(load_config(str(tmp_path / "ntk.json")))


def test_scripts_convert_and_generate_lm_end_to_end(tmp_path, data_dir):
    """A LLaMA-3 style directory (tokenizer.json + LlamaForCausalLM) through the real scripts/convert.py,
    then scripts/generate_lm.py --top_k 1 with the converted bpe files: the continuation transformers'
    greedy generate gives from <|begin_of_text|> + the prompt, up to <|end_of_text|>."""
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("regex")
    from tests.unit.test_convert_llm_tokenizers import SPECIALS, training_text, write_tokenizer
    from uer.cli.generate_lm import main as generate_lm_main
    hf_dir = tmp_path / "hf"
    size = write_tokenizer(hf_dir, "llama3", training_text(data_dir)[:400], vocab_size=500)
    assert tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json")).get_vocab_size() == size
    hf_model = randomize(T.LlamaForCausalLM(T.LlamaConfig(**{**LLAMA, "vocab_size": size, "bos_token_id": size - 3,
                                                             "eos_token_id": size - 2}, num_key_value_heads=2)))
    hf_model.save_pretrained(hf_dir)
    files = {name: str(tmp_path / name) for name in ("llama.bin", "llama.json", "vocab.json", "merges.txt")}
    run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert.py"), "--from", "hf", "--to", "uer",
                          "--input_dir", str(hf_dir), "--output_model_path", files["llama.bin"],
                          "--output_vocab_path", files["vocab.json"], "--output_merges_path", files["merges.txt"]],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    prompts = ["The game was", "中文 text and 2024", "Robert"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    n = 10
    out = generate_lm_main(["--load_model_path", files["llama.bin"], "--tokenizer", "bpe",
                            "--vocab_path", files["vocab.json"], "--merges_path", files["merges.txt"],
                            "--test_path", str(tmp_path / "p.txt"), "--prediction_path", str(tmp_path / "o.txt"),
                            "--top_k", "1", "--max_new_tokens", str(n), "--batch_size", "3"])
    hf_tok = T.PreTrainedTokenizerFast.from_pretrained(str(hf_dir))
    bos, eos = hf_tok.convert_tokens_to_ids(SPECIALS[:2])
    for prompt, line in zip(prompts, out):
        ids = torch.tensor([[bos] + hf_tok(prompt, add_special_tokens=False)["input_ids"]])
        new = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                                eos_token_id=eos, pad_token_id=eos)[0, ids.size(1):].tolist()
        new = new[:new.index(eos)] if eos in new else new
        assert line == prompt + hf_tok.decode(new).replace("\n", "\\n"), (line, new)
    assert sum(len(line) - len(prompt) for prompt, line in zip(prompts, out)) > 10


def test_sharded_safetensors_checkpoint(tmp_path):
    """A checkpoint saved in shards (model.safetensors.index.json, as 7B-class models are) converts whole."""
    torch.manual_seed(0)
    hf_model = randomize(T.LlamaForCausalLM(T.LlamaConfig(**LLAMA, num_key_value_heads=2)))
    hf_model.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    shards = [n for n in os.listdir(tmp_path / "hf") if n.endswith(".safetensors")]
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists() and len(shards) > 2
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "hf"),
                  "--output_model_path", str(tmp_path / "uer.safetensors")])
    ours = load_uer(str(tmp_path / "uer.safetensors"), load_config(str(tmp_path / "uer.json")))
    src, keep = batch()
    with torch.no_grad():
        theirs = hf_model(input_ids=src, attention_mask=keep.long()).logits
    assert float((uer_logits(ours, src, keep) - theirs)[keep].abs().max()) <= TOL


# The published models' config.json values (sizes only; no weights are read).
PUBLISHED = {
    "llama3/8b": ("llama", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                                rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False)),
    "llama2/7b": ("llama", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                                rms_norm_eps=1e-5, tie_word_embeddings=False)),
    "mistral/7b": ("mistral", dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                                   rms_norm_eps=1e-5, sliding_window=4096, tie_word_embeddings=False)),
    "qwen2/0.5b": ("qwen2", dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                                 rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)),
    "bloom/560m": ("bloom", dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16, layer_norm_epsilon=1e-5)),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_config_converts_to_the_shipped_config_and_back(name):
    """The published config.json becomes models/<name>.json (the keys that decide the computation), and the
    shipped config exports to a config.json that imports to it again."""
    from uer.config import config_from_dict
    from uer.convert import CONVERTERS
    family, hf = PUBLISHED[name]
    conv = CONVERTERS.get(family)()
    variant = conv.variants[0]
    shipped = load_config(os.path.join(ROOT, "models", name + ".json"))
    shipped.vocab_size = shipped.vocab_size or hf["vocab_size"]
    ours = config_from_dict(conv.config_to_uer(hf, variant))
    same = ("attention_dropout", "hidden_act")     # -1 = dropout (0 here); gelu_new = gelu_fast (tanh GELU)
    differ = {f.name for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(shipped, f.name)}
    assert differ <= set(same), differ
    assert ours.attention_dropout_prob == shipped.attention_dropout_prob
    again = config_from_dict(conv.config_to_uer(conv.config_to_hf(shipped, variant), variant))
    assert not {f.name for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(again, f.name)} - set(same)
