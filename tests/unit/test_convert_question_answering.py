"""BertForQuestionAnswering <-> uer's SpanExtractor (uer.tasks.mrc), proven numerically: a tiny
random transformers model is saved, converted with the command-line entry point, and both give the
same start/end logits; converted back, every tensor equals the original and transformers loads it."""

import pytest
import torch

T = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from uer.config import load_config  # noqa: E402
from uer.convert import build_uer_model  # noqa: E402
from uer.convert.cli import main as convert_main  # noqa: E402
from uer.models.weights import load_weights  # noqa: E402
from uer.tasks.mrc import SpanExtractor  # noqa: E402

T.logging.set_verbosity_error()
TOL = 1e-5
V = 99


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            if p.dim() == 1 and "LayerNorm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model.eval()


def batch(pad_id=0):
    """[CLS] question [SEP] context [SEP] pairs, right-padded: uer segments 1/2 = HF token types 0/1."""
    g = torch.Generator().manual_seed(1)
    lengths, questions = [12, 9, 5], [4, 3, 2]
    src = torch.randint(3, V, (3, max(lengths)), generator=g)
    seg = torch.zeros_like(src)
    for b, (n, q) in enumerate(zip(lengths, questions)):
        seg[b, :q], seg[b, q:n] = 1, 2
    keep = seg > 0
    src[~keep] = pad_id
    return src, seg, keep, {"input_ids": src, "attention_mask": keep.long(), "token_type_ids": (seg == 2).long()}


def test_bert_question_answering_parity_and_round_trip(tmp_path):
    torch.manual_seed(0)
    config = T.BertConfig(vocab_size=V, max_position_embeddings=40, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=37)
    hf_model = randomize(T.BertForQuestionAnswering(config))
    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    hf_model.save_pretrained(hf_dir)
    model_path, config_path = str(tmp_path / "qa.bin"), str(tmp_path / "qa.json")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(hf_dir),
                  "--output_model_path", model_path, "--output_config_path", config_path])

    uer_config = load_config(config_path)
    ours = build_uer_model(uer_config, "question_answering")
    assert ours.head_name == "span"
    load_weights(ours, model_path)            # strict: every tensor of the span model is there
    ours.eval()
    src, seg, keep, hf_batch = batch()
    with torch.no_grad():
        logits = ours({"src": src, "seg": seg})["logits"]
        theirs = hf_model(**hf_batch)
    start_diff = float((logits[..., 0] - theirs.start_logits)[keep].abs().max())
    end_diff = float((logits[..., 1] - theirs.end_logits)[keep].abs().max())
    print(f"\nBertForQuestionAnswering: max |uer - hf| start {start_diff:.2e} end {end_diff:.2e}")
    assert start_diff <= TOL and end_diff <= TOL

    convert_main(["--from", "uer", "--to", "hf", "--input_model_path", model_path, "--config_path", config_path,
                  "--output_dir", str(back_dir), "--architecture", "bert"])
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(back_dir / "model.safetensors")
    assert sorted(exported) == sorted(original)
    unequal = [k for k in original if not torch.equal(original[k], exported[k])]
    assert not unequal, unequal
    reloaded, info = T.AutoModelForQuestionAnswering.from_pretrained(back_dir, output_loading_info=True)
    assert type(reloaded) is T.BertForQuestionAnswering
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        again = reloaded.eval()(**hf_batch)
    assert torch.allclose(again.start_logits, theirs.start_logits, atol=1e-6, rtol=0)
    assert torch.allclose(again.end_logits, theirs.end_logits, atol=1e-6, rtol=0)


def test_converted_model_answers_like_transformers(tmp_path):
    """run_cmrc_infer on a converted BertForQuestionAnswering picks the span transformers' logits pick."""
    import json

    from uer.cli.cmrc import infer_main
    from uer.tasks.mrc import best_span

    torch.manual_seed(0)
    config = T.BertConfig(vocab_size=V, max_position_embeddings=40, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=37)
    hf_model = randomize(T.BertForQuestionAnswering(config), seed=5)
    hf_model.save_pretrained(tmp_path / "hf")
    chars = [chr(0x4E00 + i) for i in range(V - 5)]          # one CJK character per token
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars) + "\n",
                                        encoding="utf-8")
    model_path = str(tmp_path / "qa.bin")
    convert_main(["--from", "hf", "--to", "uer", "--input_dir", str(tmp_path / "hf"),
                  "--output_model_path", model_path, "--output_config_path", str(tmp_path / "qa.json")])
    question, context = "".join(chars[10:15]), "".join(chars[30:52])
    (tmp_path / "q.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "Q1", "question": question}]}]}]}, ensure_ascii=False), encoding="utf-8")
    answers = infer_main(["--load_model_path", model_path, "--config_path", str(tmp_path / "qa.json"),
                          "--vocab_path", str(tmp_path / "vocab.txt"), "--test_path", str(tmp_path / "q.json"),
                          "--prediction_path", str(tmp_path / "prediction.json"), "--max_answer_length", "6"])
    ids = [2] + list(range(15, 20)) + [3] + list(range(35, 57)) + [3]
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([[0] * 7 + [1] * 23]))
    s, e, _ = best_span(out.start_logits[0, 7:29].numpy(), out.end_logits[0, 7:29].numpy(), 6)
    assert answers == {"Q1": context[s:e + 1]} and 1 <= e - s + 1 <= 6
