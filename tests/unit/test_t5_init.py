"""``"init": "t5"`` (uer/models/t5_init.py): each parameter group is drawn with T5's std — checked against the
rule and against transformers' own T5 initialisation of a model of the same sizes — and a tiny pre-LN T5
learns a toy task with it where BERT's N(0, 0.02) leaves it near chance."""

import json
import os

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.models import Model
from uer.tasks.heads import TaskModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D_MODEL, D_FF, HEADS, D_KV = 64, 256, 4, 16       # q's T5 std 1/32, BERT's 0.02: a 10% tolerance tells them apart


def t5_config(family="t5/small.json", **overrides):
    data = json.load(open(os.path.join(ROOT, "models", family)))
    data.update(emb_size=D_MODEL, hidden_size=D_MODEL, feedforward_size=D_FF, heads_num=HEADS, attention_head_size=D_KV,
                layers_num=2, decoder_layers_num=2, max_seq_length=32, dropout=0.0, vocab_size=128)
    data.update(overrides)
    return config_from_dict(data, source="test")


def group_stds(model) -> dict:
    """std over all of a group's parameters (uer names)."""
    groups = {}
    for name, p in model.named_parameters():
        if name.endswith("norm.weight") or "norm_" in name:
            continue
        for key, group in ((".query.", "q"), (".key.", "k"), (".value.", "v"), (".output.", "o"),
                           ("linear_1", "wi"), ("linear_gate", "wi"), ("linear_2", "wo"),
                           ("word.embedding", "embedding"), ("position.embedding", "relative_bias"),
                           ("lm.output_weight", "lm_head")):
            if key in name:
                groups.setdefault(group, []).append(p.detach().flatten())
                break
    return {g: float(torch.cat(ts).std()) for g, ts in groups.items()}


def hf_group_stds(tied: bool) -> dict:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=128, d_model=D_MODEL, d_kv=D_KV, d_ff=D_FF, num_layers=2, num_heads=HEADS,
        feed_forward_proj="relu" if tied else "gated-gelu", tie_word_embeddings=tied))
    groups = {}
    for name, p in hf.named_parameters():
        for key, group in ((".q.", "q"), (".k.", "k"), (".v.", "v"), (".o.", "o"), (".wi", "wi"), (".wo.", "wo"),
                           ("shared.", "embedding"), ("relative_attention_bias", "relative_bias"),
                           ("lm_head", "lm_head")):
            if key in name:
                groups.setdefault(group, []).append(p.detach().flatten())
                break
    return {g: float(torch.cat(ts).std()) for g, ts in groups.items()}


RULE = {"q": (D_MODEL * D_KV) ** -0.5, "k": D_MODEL ** -0.5, "v": D_MODEL ** -0.5, "o": (HEADS * D_KV) ** -0.5,
        "wi": D_MODEL ** -0.5, "wo": D_FF ** -0.5, "embedding": 1.0, "relative_bias": D_MODEL ** -0.5,
        "lm_head": D_MODEL ** -0.5}     # untied (v1.1): Mesh TF's N(0, 1) read through a d_model^-0.5 rescale


@pytest.mark.parametrize("family", ["t5/small.json", "t5_v1_1/small.json"])
def test_each_group_has_t5s_std(family):
    torch.manual_seed(0)
    stds = group_stds(Model(t5_config(family)))
    expected = {g: s for g, s in RULE.items() if g != "lm_head" or family.startswith("t5_v1_1")}
    assert set(stds) == set(expected)
    for group, std in stds.items():
        # the relative-bias table is small (32 buckets x 4 heads per stack): a wider band, still far from 0.02
        tolerance = 0.25 if group == "relative_bias" else 0.1
        assert std == pytest.approx(expected[group], rel=tolerance), (group, std, expected[group])


@pytest.mark.parametrize("family, tied", [("t5/small.json", True), ("t5_v1_1/small.json", False)])
def test_groups_match_transformers_t5_init(family, tied):
    ours, theirs = group_stds(Model(t5_config(family))), hf_group_stds(tied)
    # transformers 5 ties T5's lm_head to ``shared`` whatever the config says, so v1.1's head is
    # checked against the rule above only
    assert set(ours) - {"lm_head"} == set(theirs) - {"lm_head"}
    for group in theirs:
        assert ours[group] == pytest.approx(theirs[group], rel=0.25), group


def test_bert_init_is_the_default_and_fails_the_rule():
    stds = group_stds(Model(t5_config(init="normal")))
    assert all(std == pytest.approx(0.02, rel=0.1) for std in stds.values()), stds
    assert stds["q"] < 0.75 * RULE["q"]


def test_task_models_draw_their_backbone_the_same_way():
    stds = group_stds(TaskModel(t5_config(decoder="", tgt_embedding=[], share_embedding=False, scale_tied_output=False,
                                          target=["cls"]), head="classifier"))
    assert stds["q"] == pytest.approx(RULE["q"], rel=0.1) and stds["embedding"] == pytest.approx(1.0, rel=0.1)


def test_t5_init_without_removing_the_attention_scale_is_refused():
    with pytest.raises(ConfigError, match="remove_attention_scale"):
        t5_config(remove_attention_scale=False)
    with pytest.raises(ConfigError, match="key 'init'"):
        t5_config(init="xavier")


def reverse_batch(generator, n=16, length=6, vocab=32):
    src = torch.randint(5, vocab, (n, length), generator=generator)
    tgt = src.flip(1)
    return {"src": src, "seg": torch.ones_like(src), "tgt_in": torch.cat([torch.zeros_like(tgt[:, :1]), tgt[:, :-1]], 1),
            "tgt_out": tgt, "tgt_seg": torch.ones_like(tgt)}


def toy_loss(init: str, steps: int = 80, lr: float = 3e-3) -> float:
    """Mean lm loss of the last 10 steps of a tiny pre-LN T5 learning to reverse 6 tokens (no warmup)."""
    torch.manual_seed(0)
    model = Model(t5_config(init=init, vocab_size=32, emb_size=32, hidden_size=32, feedforward_size=64, heads_num=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator, losses = torch.Generator().manual_seed(1), []
    for _ in range(steps):
        out = model(reverse_batch(generator))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["lm_loss"]))
    return sum(losses[-10:]) / 10


def test_a_tiny_pre_ln_t5_learns_faster_with_t5_init():
    chance = torch.log(torch.tensor(27.0)).item()       # 27 token ids occur
    t5, bert = toy_loss("t5"), toy_loss("normal")
    assert t5 < chance - 0.5, (t5, chance)
    assert t5 < bert - 0.3, (t5, bert)


def test_deep_init_is_refused_with_t5_init(tiny_corpus, tmp_path, capsys):
    from uer.cli.preprocess import main as preprocess_main
    from uer.cli.pretrain import main as pretrain_main
    vocab, dataset = str(tiny_corpus / "vocab.txt"), str(tmp_path / "dataset")
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", vocab,
                     "--dataset_path", dataset, "--seq_length", "32", "--data_processor", "mlm"])   # refused before it is read
    config = tmp_path / "t5.json"
    config.write_text(json.dumps({**json.load(open(os.path.join(ROOT, "models", "t5", "small.json"))),
                                  "hidden_size": 32, "emb_size": 32, "layers_num": 1}))
    with pytest.raises(SystemExit):
        pretrain_main(["--dataset_path", dataset, "--vocab_path", vocab, "--config_path", str(config), "--deep_init",
                       "--output_model_path", str(tmp_path / "m.bin"), "--total_steps", "1", "--batch_size", "2"])
    assert "--deep_init redraws" in capsys.readouterr().err
