"""llm_pretrain and llm_sft: exact packing, document-boundary attention (through a real model), the
SFT loss mask of Alpaca and multi-turn chats, the truncation rule, and one clear error per bad line.

Words ``w<n>`` are single tokens, so the token ids tell exactly which document or turn they came from."""

import json

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig, config_from_dict
from uer.data.collator import PretrainCollator
from uer.data.dataset import IndexedDataset
from uer.data.preprocess import build_dataset
from uer.data.processors import build_processor
from uer.data.processors.chat_template import TEMPLATES, load_template
from uer.data.tokenizers import build_tokenizer
from uer.errors import ConfigError, DataError
from uer.layers.masks import build_attention_mask
from uer.models import build_model

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP = range(4)
MARKERS = ["<", "|", ">", "#", ":", "system", "user", "assistant", "instruction", "response", "sys", "usr", "bot"]
N_WORDS = 3000


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "vocab.txt"
    path.write_text("\n".join(SPECIALS + MARKERS + [f"w{i}" for i in range(N_WORDS)]) + "\n", encoding="utf-8")
    return build_tokenizer(name="bert", vocab_path=str(path))


def words(start, n):
    return " ".join(f"w{i}" for i in range(start, start + n))


def random_docs(rng, n_docs, max_len=30):
    docs, n = [], 0
    for d in range(n_docs):
        k = int(rng.integers(1, max_len + 1))
        docs.append((d + 1, [words(n, k)]))
        n += k
    return docs


def packed(proc, tokenizer, docs):
    """Instances as the pipeline builds them: workers tokenize blocks, one packer packs in order."""
    packer = proc.packer()
    out = []
    for start in range(0, len(docs), 7):               # several blocks: packing crosses block boundaries
        for segment in proc.segments(proc.tokenize(docs[start:start + 7], tokenizer)):
            out.extend(packer.feed(segment))
    return out + packer.flush()


def streams_of(instance):
    src, fields = instance
    assert fields == ()
    return src if isinstance(src, dict) else {"src": src}


# -- llm_pretrain: packing --------------------------------------------------------------------------
@pytest.mark.parametrize("document_mask", [False, True])
def test_packing_is_exact(tokenizer, document_mask):
    docs = random_docs(np.random.default_rng(0), 60)
    proc = build_processor("llm_pretrain", tokenizer.vocab, 16, options={"document_mask": document_mask})
    instances = [streams_of(i) for i in packed(proc, tokenizer, docs)]
    stream = np.concatenate([[CLS, *tokenizer.encode(lines[0]), SEP] for _, lines in docs])
    assert all(len(i["src"]) == 17 for i in instances[:-1]) and 2 <= len(instances[-1]["src"]) <= 17
    # Windows overlap by one token (the last label of one is the first input of the next): every
    # token after the first is predicted exactly once, nothing is padded, nothing lost or reordered.
    for a, b in zip(instances, instances[1:]):
        assert a["src"][-1] == b["src"][0]
    rebuilt = np.concatenate([instances[0]["src"]] + [i["src"][1:] for i in instances[1:]])
    assert np.array_equal(rebuilt, stream)
    if document_mask:
        starts = np.concatenate([instances[0]["doc_start"]] + [i["doc_start"][1:] for i in instances[1:]])
        assert np.array_equal(np.nonzero(starts)[0], np.nonzero(stream == CLS)[0])
    else:
        assert set(instances[0]) == {"src"}


def test_json_corpus_gives_the_plain_corpus_instances(tokenizer):
    docs = random_docs(np.random.default_rng(1), 20)
    json_docs = [(n, [json.dumps({"text": lines[0], "meta": {"id": n}})]) for n, lines in docs]
    plain = build_processor("llm_pretrain", tokenizer.vocab, 16)
    as_json = build_processor("llm_pretrain", tokenizer.vocab, 16, options={"json_format_corpus": True})
    a, b = packed(plain, tokenizer, docs), packed(as_json, tokenizer, json_docs)
    assert len(a) == len(b) and all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))


@pytest.mark.parametrize("line, problem", [
    ("{\"text\": \"w1\"", "not valid JSON"),
    ("[\"w1\"]", "expected a JSON object"),
    ("{\"content\": \"w1\"}", "has no \"text\""),
    ("{\"text\": 5}", "\"text\" must be a string"),
])
def test_bad_json_corpus_line_names_file_and_line(tokenizer, line, problem):
    proc = build_processor("llm_pretrain", tokenizer.vocab, 16, corpus_path="corpus.jsonl",
                           options={"json_format_corpus": True})
    with pytest.raises(DataError, match=f"corpus.jsonl, line 7: .*{problem}"):
        proc.tokenize([(6, ['{"text": "w1"}']), (7, [line])], tokenizer)


def test_preprocess_stores_document_starts(tokenizer, tmp_path):
    corpus = tmp_path / "c.jsonl"
    docs = random_docs(np.random.default_rng(2), 40)
    corpus.write_text("".join(json.dumps({"text": lines[0]}) + "\n\n" for _, lines in docs), encoding="utf-8")
    meta = build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "llm_pretrain", 16, show_progress=False,
                         processor_options={"json_format_corpus": True, "document_mask": True}, docs_buffer_size=6)
    assert meta["streams"] == ["src", "doc_start"] and meta["document_mask"] and meta["documents"] == 40
    dataset = IndexedDataset(str(tmp_path / "ds"))
    items = [dataset[i] for i in range(len(dataset))]
    stream = np.concatenate([[CLS, *tokenizer.encode(lines[0]), SEP] for _, lines in docs])
    rebuilt = np.concatenate([items[0]["src"]] + [i["src"][1:] for i in items[1:]])
    assert np.array_equal(rebuilt, stream)
    for item in items:
        assert np.array_equal(item["doc_start"][1:] > 0, item["src"][1:] == CLS)


# -- llm_pretrain: document-boundary attention --------------------------------------------------------
def causal_lm(**changes):
    base = dict(embedding=["word", "pos"], remove_embedding_layernorm=True, vocab_size=N_WORDS + 20, emb_size=32,
                hidden_size=32, feedforward_size=64, heads_num=4, layers_num=2, max_seq_length=64,
                hidden_act="gelu_fast", mask="causal", layernorm_positioning="pre", target=["lm"],
                tie_weights=True, dropout=0.0, data_processor="llm_pretrain")
    base.update(changes)
    torch.manual_seed(0)
    return build_model(config_from_dict(base, "<test>")).eval()


def doc_masked_collator(tokenizer):
    return PretrainCollator(tokenizer.vocab, ["lm"], MaskingConfig(), 7, [], seq_length=16, pad_multiple=1)


def packed_item(*docs):
    src = np.concatenate([[CLS, *d, SEP] for d in docs]).astype(np.int64)
    starts = np.zeros(len(src), np.int64)
    starts[np.cumsum([0] + [len(d) + 2 for d in docs[:-1]])] = 1
    return {"src": src, "doc_start": starts}


def test_document_fields_and_labels(tokenizer):
    a, b = [10, 11, 12], [20, 21]
    out = doc_masked_collator(tokenizer)([packed_item(a, b), packed_item(b)], [0, 1], epoch=0)
    assert out["doc_ids"][0].tolist() == [1] * 5 + [2] * 3            # input = all but the last token
    assert out["positions"][0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert out["doc_ids"][1].tolist() == [1] * 3 + [0] * 5 and out["positions"][1].tolist() == [0, 1, 2] + [0] * 5
    # Every next token is a label except across the boundary: [SEP] of doc A does not predict [CLS] of B.
    assert out["lm_labels"][0].tolist() == [10, 11, 12, SEP, -100, 20, 21, SEP]


@pytest.mark.parametrize("changes", [{}, {"embedding": ["word"], "rotary_position_embedding": True}],
                         ids=["learned_positions", "rotary"])
def test_document_mask_blocks_other_documents(tokenizer, changes):
    try:
        model = causal_lm(**changes)
    except ConfigError as e:        # rotary lands with the LLaMA blocks
        pytest.skip(f"this tree has no rotary positions yet: {e}")
    collate = doc_masked_collator(tokenizer)
    b = [40, 41, 42, 43]

    def hidden(item):
        batch = collate([item], [0], epoch=0)
        with torch.no_grad():
            return model.encode(batch["src"], batch["seg"], batch["positions"], documents=batch["doc_ids"])[0]

    one, other = hidden(packed_item([10, 11, 12], b)), hidden(packed_item([30, 31, 32], b))
    alone = hidden(packed_item(b))
    assert not torch.allclose(one[:5], other[:5])                 # the first documents differ ...
    torch.testing.assert_close(one[5:], other[5:], rtol=0, atol=1e-5)    # ... and B cannot see them
    torch.testing.assert_close(one[5:], alone, rtol=0, atol=1e-5)        # positions restart: B as if alone
    # The same sequence without the document mask: B attends to A (the check above can fail).
    with torch.no_grad():
        seq = torch.from_numpy(packed_item([10, 11, 12], b)["src"][None, :-1])
        unmasked = model.encode(seq, torch.ones_like(seq))[0]
    assert not torch.allclose(unmasked[5:], one[5:], atol=1e-3)


def test_mask_within_documents_shape_and_padding():
    seg = torch.tensor([[1, 1, 1, 1, 0]])
    docs = torch.tensor([[1, 1, 2, 2, 0]])
    mask = build_attention_mask("causal", seg, docs).attn_mask[0, 0]
    expected = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                             [0, 0, 0, 0, 1]], dtype=torch.bool)          # the padding row sees itself only
    assert torch.equal(mask, expected)


# -- llm_sft ----------------------------------------------------------------------------------------
def sft(tokenizer, records, seq_length=64, **options):
    proc = build_processor("llm_sft", tokenizer.vocab, seq_length, corpus_path="sft.jsonl", options=options)
    samples = proc.tokenize([(n + 1, [json.dumps(r)]) for n, r in enumerate(records)], tokenizer)
    return proc, samples


def trained_runs(ids, mask):
    """The runs of trained tokens, as lists of ids."""
    runs, current = [], []
    for token, flag in zip(ids, mask):
        if flag:
            current.append(int(token))
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def test_alpaca_loss_mask_is_exactly_the_response_and_eos(tokenizer):
    records = [{"instruction": words(0, 3), "input": words(3, 2), "output": words(5, 4)},
               {"instruction": words(9, 2), "output": words(11, 1), "system": words(12, 2)}]
    proc, samples = sft(tokenizer, records)
    for (ids, mask), record in zip(samples, records):
        assert ids[0] == CLS and mask[0] == 0
        assert trained_runs(ids, mask) == [tokenizer.encode(record["output"]) + [SEP]]
        assert ids[-1] == SEP and mask[-1] == 1
    ids, mask = samples[0]
    prompt = tokenizer.encode("<|user|>\n" + words(0, 3) + "\n\n" + words(3, 2) + "\n<|assistant|>\n")
    assert ids[1:1 + len(prompt)].tolist() == prompt and not mask[:1 + len(prompt)].any()
    instances = proc.build(samples, np.random.default_rng(0))
    assert set(instances[0][0]) == {"src", "loss_mask"}


def test_multi_turn_trains_every_assistant_turn_only(tokenizer):
    turns = [("system", words(0, 2)), ("user", words(2, 3)), ("assistant", words(5, 2)), ("user", words(7, 1)),
             ("assistant", words(8, 3)), ("user", words(11, 2))]    # a trailing user turn trains nothing
    record = {"messages": [{"role": r, "content": c} for r, c in turns]}
    _, [(ids, mask)] = sft(tokenizer, [record])
    assert trained_runs(ids, mask) == [tokenizer.encode(words(5, 2)) + [SEP], tokenizer.encode(words(8, 3)) + [SEP]]
    assert ids[-1] == SEP and tokenizer.encode(words(11, 2))[0] not in ids.tolist()
    untrained = {int(t) for t, m in zip(ids, mask) if not m}
    for _, content in turns[:2] + turns[3:4]:                    # system and user text is never trained
        assert set(tokenizer.encode(content)) <= untrained


def test_collated_labels_follow_the_loss_mask(tokenizer):
    proc, samples = sft(tokenizer, [{"instruction": words(0, 3), "output": words(3, 2)},
                                    {"messages": [{"role": "user", "content": words(5, 1)},
                                                  {"role": "assistant", "content": words(6, 1)},
                                                  {"role": "user", "content": words(7, 1)},
                                                  {"role": "assistant", "content": words(8, 2)}]}])
    items = [{"src": ids.astype(np.int64), "loss_mask": mask} for ids, mask in samples]
    out = PretrainCollator(tokenizer.vocab, ["lm"], MaskingConfig(), 7, [], seq_length=64)(items, [0, 1], 0)
    for row, (ids, mask) in zip(out["lm_labels"].tolist(), samples):
        predicted = [label for label in row if label != -100]
        assert predicted == [int(t) for t, m in zip(ids[1:], mask[1:]) if m]
    assert "doc_ids" not in out


def test_truncation_cuts_the_prompt_from_the_left_and_drops_what_cannot_fit(tokenizer, tmp_path, caplog):
    template = tmp_path / "plain.json"      # one-token role markers, so the lengths are easy to count
    template.write_text(json.dumps({"system": "sys {content}", "user": "usr {content}", "assistant": "bot {content}"}))
    long_prompt = {"instruction": words(0, 30), "output": words(100, 5)}
    too_long = {"instruction": words(200, 2), "output": words(300, 20)}     # 20 + [SEP] = the whole budget
    fits = {"messages": [{"role": "user", "content": words(400, 3)}, {"role": "assistant", "content": words(500, 3)}]}
    proc, samples = sft(tokenizer, [long_prompt, too_long, fits], seq_length=20, chat_template=str(template))
    assert samples.skipped == {"response_too_long": 1} and len(samples) == 2
    (ids, mask), (ids_fit, mask_fit) = samples
    full = [CLS] + tokenizer.encode("usr " + words(0, 30) + "bot") + tokenizer.encode(words(100, 5)) + [SEP]
    assert len(ids) == 21 and ids.tolist() == [CLS] + full[len(full) - 20:]     # [CLS] kept, oldest prompt cut
    assert trained_runs(ids, mask) == [tokenizer.encode(words(100, 5)) + [SEP]]
    assert ids_fit.tolist() == [CLS] + tokenizer.encode("usr " + words(400, 3) + "bot") + \
        tokenizer.encode(words(500, 3)) + [SEP]
    # Through the pipeline: the dropped example is counted in meta.json.
    corpus = tmp_path / "sft.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in [long_prompt, too_long, fits, too_long]), encoding="utf-8")
    meta = build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "llm_sft", 20, show_progress=False,
                         processor_options={"chat_template": str(template)}, processes_num=2, docs_buffer_size=1)
    assert meta["skipped"] == {"response_too_long": 2} and meta["instances"] == 2      # summed over workers
    assert "2 example(s) of" in caplog.text and "set aside by the llm_sft processor: 2 response_too_long" in caplog.text
    assert meta["streams"] == ["src", "loss_mask"] and meta["chat_template"] == str(template)


def test_tencentpretrain_template_writes_its_alpaca_prompt(tokenizer):
    record = {"instruction": words(0, 2), "input": words(2, 2), "output": words(4, 2)}
    _, [(ids, mask)] = sft(tokenizer, [record], chat_template="tencentpretrain")
    prompt = tokenizer.encode(words(0, 2) + " ### Instruction:" + words(2, 2) + " ### Response:")
    assert ids.tolist() == [CLS] + prompt + tokenizer.encode(words(4, 2)) + [SEP]
    assert mask.tolist() == [0] * (1 + len(prompt)) + [1] * 3
    template = TEMPLATES["tencentpretrain"]
    assert template.prompt_text("user", template.alpaca_user("a", "")) == "a ### Instruction: ### Response:"


@pytest.mark.parametrize("line, problem", [
    ("{\"instruction\": \"w1\", \"output\": \"w2\"", "line 2: not valid JSON"),
    ("{\"prompt\": \"w1\"}", "line 2: expected an Alpaca record or a chat"),
    ("{\"instruction\": \"w1\"}", "line 2: the JSON object has no \"output\""),
    ("{\"instruction\": \"w1\", \"output\": [\"w2\"]}", "line 2: \"output\" must be a string"),
    ("{\"messages\": []}", "line 2: \"messages\" must be a non-empty list"),
    ("{\"messages\": [{\"role\": \"human\", \"content\": \"w1\"}]}", "line 2, message 1: role 'human' is not one"),
    ("{\"messages\": [{\"role\": \"user\", \"content\": \"w1\"}]}", "line 2: the chat has no assistant message"),
    ("{\"messages\": [{\"role\": \"assistant\", \"content\": null}]}", "line 2, message 1: \"content\" must be"),
    ("{\"messages\": [], \"output\": \"w1\"}", "line 2: the object has both"),
])
def test_bad_sft_line_names_file_and_line(tokenizer, line, problem):
    proc = build_processor("llm_sft", tokenizer.vocab, 32, corpus_path="sft.jsonl")
    good = json.dumps({"instruction": "w1", "output": "w2"})
    with pytest.raises(DataError) as error:
        proc.tokenize([(1, [good]), (2, [line])], tokenizer)
    assert str(error.value).startswith("sft.jsonl, ") and problem in str(error.value), str(error.value)


def test_bad_chat_templates(tmp_path):
    with pytest.raises(ConfigError, match="neither a built-in template"):
        load_template("chatml")
    path = tmp_path / "t.json"
    for data, problem in (({"system": "{content}", "user": "{content}"}, "missing key"),
                          ({"system": "{content}", "user": "u", "assistant": "{content}"}, "key 'user': must contain"),
                          ({"system": "{content}", "user": "{content}", "assistant": "{content}", "bos": "x"},
                           "unknown key")):
        path.write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=problem):
            load_template(str(path))


def test_processor_flags_belong_to_their_processor(tokenizer):
    with pytest.raises(ConfigError, match="--document_mask is an option of the llm_pretrain"):
        build_processor("llm_sft", tokenizer.vocab, 32, options={"document_mask": True})
    with pytest.raises(ConfigError, match="--chat_template is an option of the llm_sft"):
        build_processor("lm", tokenizer.vocab, 32, options={"chat_template": "default"})


def test_a_vocabulary_without_padding_token_works(tmp_path):
    """LLaMA's SentencePiece vocabulary has <s>, </s>, <unk> and no padding token: instances are built
    and batches padded with the end token (hidden from attention and loss)."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(50)]) + "\n", encoding="utf-8")
    tokenizer = build_tokenizer(name="space", vocab_path=str(path))
    bos, eos = tokenizer.vocab.cls_id, tokenizer.vocab.sep_id
    assert tokenizer.vocab.pad_id is None and (bos, eos) == (1, 2)
    proc, samples = sft(tokenizer, [{"instruction": "w1 w2", "output": "w3"}, {"instruction": "w4", "output": "w5 w6 w7"}],
                        chat_template="tencentpretrain")
    items = [{"src": ids.astype(np.int64), "loss_mask": mask} for ids, mask in samples]
    out = PretrainCollator(tokenizer.vocab, ["lm"], MaskingConfig(), 7, [], seq_length=64, pad_multiple=16)(items, [0, 1], 0)
    short = len(samples[0][0]) - 1
    assert out["src"][0, short:].eq(eos).all() and out["seg"][0, short:].eq(0).all()
    assert out["lm_labels"][0].tolist().count(-100) == 16 - 2          # only "w3" and </s> are predicted
    pretrain_proc = build_processor("llm_pretrain", tokenizer.vocab, 8)
    assert pretrain_proc.tokenize([(1, ["w1 w2"])], tokenizer)[0].tolist() == [bos, 3 + 1, 3 + 2, eos]
