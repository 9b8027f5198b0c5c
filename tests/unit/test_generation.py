"""uer.generation: cached decoding equals full recomputation (GPT-2-style decoder-only and
encoder-decoder), left-padded batches equal one prompt at a time, greedy is deterministic, the logit
filters on hand-made numbers, beam search equals brute force on a tiny vocabulary, end-token stops,
and greedy parity with transformers' GPT-2 ``generate`` through our converter."""

import itertools

import pytest
import torch

from uer.config import config_from_dict
from uer.errors import ConfigError
from uer.generation import (GenerationSettings, generate_lm, generate_seq2seq, beam_search,
                            sample)
from uer.generation.logits import (banned_ngram_tokens, ban_repeated_ngrams, repetition_penalty, seen_mask,
                                   top_k_filter, top_p_filter)
from uer.models import build_model

INF = float("inf")


def gpt2_config(**changes):
    base = dict(embedding=["word", "pos"], remove_embedding_layernorm=True, vocab_size=50, emb_size=32,
                hidden_size=32, feedforward_size=64, heads_num=4, layers_num=3, max_seq_length=64,
                hidden_act="gelu_fast", mask="causal", layernorm_positioning="pre", layernorm_eps=1e-5,
                target=["lm"], tie_weights=True, dropout=0.0)
    base.update(changes)
    return config_from_dict(base, "<test>")


def randomized(model, seed=0, scale=0.6):
    """Larger random weights than the initialisation, so greedy paths are varied, not one repeated token."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
            if "norm" in name and p.dim() == 1 and not name.endswith("bias"):
                p.add_(1.0)
    return model.eval()


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    return randomized(build_model(gpt2_config()))


PROMPTS = [[3, 17, 9, 24, 5, 11, 2], [7, 8], [30, 1, 44, 12]]


def greedy(n=12, **kw):
    return GenerationSettings(max_new_tokens=n, top_k=1, **kw)


# ---------------------------------------------------------------------------------------------- cache

def test_cached_logits_equal_full_pass_at_every_step(gpt2):
    ids = torch.tensor([PROMPTS[0] + [4, 6, 19]])
    seg = torch.ones_like(ids)
    with torch.no_grad():
        full = gpt2.target.lm.logits(gpt2.encode(ids, seg))
        cache = gpt2.encoder.new_cache()
        steps = [gpt2.target.lm.logits(gpt2.encoder(gpt2.embedding(ids[:, :5], seg[:, :5]), seg[:, :5], cache))]
        for t in range(5, ids.size(1)):
            emb = gpt2.embedding(ids[:, t:t + 1], seg[:, t:t + 1], start=t)
            steps.append(gpt2.target.lm.logits(gpt2.encoder(emb, seg[:, t:t + 1], cache)))
    # The large random weights give logits of ~10: float32 rounding of the two summation orders
    # (which depend on the thread count) differs by up to ~1e-5 relative.
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)


def test_cached_greedy_gives_the_tokens_of_full_recomputation(gpt2):
    cached = generate_lm(gpt2, PROMPTS, greedy(20))
    full = generate_lm(gpt2, PROMPTS, greedy(20), use_cache=False)
    assert cached == full
    assert len(set(sum(cached, []))) > 6        # varied continuations, not one token repeated


def test_left_padded_batch_equals_one_prompt_at_a_time(gpt2):
    batched = generate_lm(gpt2, PROMPTS, greedy(15))
    alone = [generate_lm(gpt2, [p], greedy(15))[0] for p in PROMPTS]
    assert batched == alone
    beam = GenerationSettings(max_new_tokens=8, beam_width=3)
    assert generate_lm(gpt2, PROMPTS, beam) == [generate_lm(gpt2, [p], beam)[0] for p in PROMPTS]
    assert generate_lm(gpt2, PROMPTS, beam) == generate_lm(gpt2, PROMPTS, beam, use_cache=False)


def test_encoder_without_causal_mask_refuses_a_cache():
    model = build_model(gpt2_config(mask="fully_visible", target=["mlm"], tie_weights=False))
    with pytest.raises(ConfigError, match="causal encoder"):
        model.encoder.new_cache()


def test_top_k_1_is_deterministic_and_sampling_follows_the_seed(gpt2):
    first = generate_lm(gpt2, PROMPTS, greedy(10), generator=torch.Generator().manual_seed(1))
    second = generate_lm(gpt2, PROMPTS, greedy(10), generator=torch.Generator().manual_seed(2))
    assert first == second
    sampling = GenerationSettings(max_new_tokens=10, top_k=0, temperature=2.0)
    a = generate_lm(gpt2, PROMPTS, sampling, generator=torch.Generator().manual_seed(1))
    b = generate_lm(gpt2, PROMPTS, sampling, generator=torch.Generator().manual_seed(1))
    c = generate_lm(gpt2, PROMPTS, sampling, generator=torch.Generator().manual_seed(2))
    assert a == b and a != c


def test_per_row_limits_and_end_token(gpt2):
    plain = generate_lm(gpt2, PROMPTS, greedy(10))
    eos = plain[0][3]                          # the 4th token of row 0 becomes the end token
    stopped = generate_lm(gpt2, PROMPTS, greedy(10, eos_id=eos))
    assert stopped[0] == plain[0][:plain[0].index(eos) + 1]
    for row, full in zip(stopped, plain):
        assert row == (full[:full.index(eos) + 1] if eos in full else full)
    limited = generate_lm(gpt2, PROMPTS, greedy(10), max_new=[2, 10, 5])
    assert [len(r) for r in limited] == [2, 10, 5] and limited[1] == plain[1]


# ---------------------------------------------------------------------------------------------- filters

def test_top_k_and_top_p_filters_on_hand_made_logits():
    probs = torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]])
    logits = probs.log()
    kept = lambda s: torch.isfinite(s[0]).nonzero().flatten().tolist()  # noqa: E731
    assert kept(top_k_filter(logits, 2)) == [0, 1]
    assert kept(top_k_filter(logits, 0)) == [0, 1, 2, 3, 4]
    assert kept(top_p_filter(logits, 0.5)) == [0]              # 0.5 reached by the first token
    assert kept(top_p_filter(logits, 0.6)) == [0, 1]
    assert kept(top_p_filter(logits, 0.85)) == [0, 1, 2]
    assert kept(top_p_filter(logits, 0.86)) == [0, 1, 2, 3]
    assert kept(top_p_filter(logits, 0.0)) == [0, 1, 2, 3, 4]  # off
    assert kept(top_p_filter(logits[:, [3, 0, 4, 1, 2]], 0.6)) == [1, 3]   # order does not matter
    kept_values = top_k_filter(logits, 3)[0, :3]
    assert torch.equal(kept_values, logits[0, :3])


def test_repetition_penalty_and_ngram_ban():
    scores = torch.tensor([[2.0, -1.0, 3.0, 0.5]])
    seen = seen_mask([[0, 1]], 4, "cpu")
    out = repetition_penalty(scores, seen, 2.0)
    assert out.tolist() == [[1.0, -2.0, 3.0, 0.5]]
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert sorted(banned_ngram_tokens([5, 1, 5, 2, 5], 2)) == [1, 2]
    assert banned_ngram_tokens([1, 2], 3) == []
    banned = ban_repeated_ngrams(torch.zeros(1, 6), [[1, 2, 3, 1, 2]], 3)
    assert banned[0, 3] == -INF and torch.isfinite(banned[0, [0, 1, 2, 4, 5]]).all()


def test_repetition_penalty_changes_greedy_output(gpt2):
    plain = generate_lm(gpt2, PROMPTS, greedy(20))
    penalised = generate_lm(gpt2, PROMPTS, greedy(20, repetition_penalty=5.0))
    assert penalised != plain
    repeats = lambda rows: sum(len(r) - len(set(r)) for r in rows)  # noqa: E731
    assert repeats(penalised) < repeats(plain)
    no_repeat = generate_lm(gpt2, PROMPTS, greedy(20, no_repeat_ngram_size=2))
    for prompt, row in zip(PROMPTS, no_repeat):
        seq = prompt + row
        bigrams = list(zip(seq, seq[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_bad_settings_name_the_flag():
    for kw, flag in [(dict(top_p=1.5), "--top_p"), (dict(temperature=0.0), "--temperature"),
                     (dict(beam_width=0), "--beam_width"), (dict(max_new_tokens=0), "--max_new_tokens")]:
        with pytest.raises(ConfigError, match=flag):
            GenerationSettings(**kw).validate()


# ---------------------------------------------------------------------------------------------- beam search

class TableStepper:
    """A toy model: the next-token log-probabilities are a fixed random function of the whole prefix."""

    def __init__(self, rows, vocab, seed=0):
        self.vocab, self.seed = vocab, seed
        self.prefixes = [(r,) for r in range(rows)]
        self.batch_size = rows
        self.contexts = [[] for _ in range(rows)]

    def logp(self, prefix):
        g = torch.Generator().manual_seed(hash((self.seed,) + prefix) % (2 ** 31))
        return (torch.randn(self.vocab, generator=g) * 2).log_softmax(-1)

    def _logits(self):
        return torch.stack([self.logp(p) for p in self.prefixes])

    def start(self):
        return self._logits()

    def advance(self, tokens):
        self.prefixes = [p + (t,) for p, t in zip(self.prefixes, tokens.tolist())]
        return self._logits()

    def reorder(self, index):
        self.prefixes = [self.prefixes[i] for i in index.tolist()]
        self.contexts = [self.contexts[i] for i in index.tolist()]
        self.batch_size = len(self.prefixes)


def brute_force(stepper, row, vocab, length, eos, penalty):
    best, best_seq = -INF, None
    for n in range(1, length + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            ends = eos is not None and seq[-1] == eos
            if (eos is not None and eos in seq[:-1]) or (n < length and not ends):
                continue   # a sequence stops at its first end token, and only there or at the limit
            total = sum(float(stepper.logp((row,) + seq[:i])[seq[i]]) for i in range(n))
            score = total / n ** penalty
            if score > best:
                best, best_seq = score, list(seq)
    return best_seq


@pytest.mark.parametrize("eos,penalty", [(None, 1.0), (0, 1.0), (0, 0.0), (0, 2.0), (4, -1.0)])
def test_beam_search_equals_brute_force_on_a_tiny_vocabulary(eos, penalty):
    vocab, length, rows = 5, 3, 3
    settings = GenerationSettings(max_new_tokens=length, beam_width=vocab ** (length - 1), eos_id=eos,
                                  length_penalty=penalty)
    found = beam_search(TableStepper(rows, vocab), settings)
    reference = TableStepper(rows, vocab)
    assert found == [brute_force(reference, r, vocab, length, eos, penalty) for r in range(rows)]


def test_narrow_beam_is_at_least_as_good_as_greedy():
    vocab, length = 5, 3
    score = lambda st, r, seq: sum(float(st.logp((r,) + tuple(seq[:i]))[seq[i]]) for i in range(len(seq)))  # noqa
    greedy_rows = sample(TableStepper(4, vocab), greedy(length))
    beam_rows = beam_search(TableStepper(4, vocab), GenerationSettings(max_new_tokens=length, beam_width=2))
    ref = TableStepper(4, vocab)
    for r in range(4):
        assert score(ref, r, beam_rows[r]) >= score(ref, r, greedy_rows[r]) - 1e-6


def test_sample_stops_every_row_at_its_end_token():
    stepper = TableStepper(6, 5, seed=3)
    rows = sample(stepper, greedy(30, eos_id=2))
    for row in rows:
        assert len(row) == 30 or (row[-1] == 2 and 2 not in row[:-1])
    assert any(row and row[-1] == 2 for row in rows)


def test_beam_width_1_equals_greedy(gpt2):
    assert generate_lm(gpt2, PROMPTS, GenerationSettings(max_new_tokens=10, beam_width=1, top_k=1)) == \
        generate_lm(gpt2, PROMPTS, greedy(10))


# ---------------------------------------------------------------------------------------------- seq2seq

def seq2seq_model(family):
    from tests.unit.test_decoder import model_for
    return model_for(family)


@pytest.mark.parametrize("family", ["t5", "bart", "mt"])
def test_seq2seq_cached_greedy_and_beam_equal_full_recomputation(family):
    pytest.importorskip("transformers")
    model = seq2seq_model(family)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)              # sharper distributions: varied greedy paths
    sources = [[5, 9, 14, 3, 22, 7], [11, 4], [40, 41, 42, 43]]
    s = greedy(10)
    cached = generate_seq2seq(model, sources, s, start_id=1)
    assert cached == generate_seq2seq(model, sources, s, start_id=1, use_cache=False)
    assert cached == [generate_seq2seq(model, [src], s, start_id=1)[0] for src in sources]
    beam = GenerationSettings(max_new_tokens=6, beam_width=3)
    assert generate_seq2seq(model, sources, beam, start_id=1) == \
        generate_seq2seq(model, sources, beam, start_id=1, use_cache=False)


# ---------------------------------------------------------------------------------------------- parity

def test_greedy_parity_with_transformers_gpt2_generate(tmp_path):
    T = pytest.importorskip("transformers")
    from uer.convert import build_uer_model, hf_to_uer
    T.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf_config = T.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                             bos_token_id=0, eos_token_id=0, pad_token_id=0)
    hf = T.GPT2LMHeadModel(hf_config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if ".ln_" in name and name.endswith("weight") else 0))
    hf.eval().save_pretrained(tmp_path / "hf")
    converted = hf_to_uer(str(tmp_path / "hf"))
    ours = build_uer_model(converted.config, "pretrain")
    ours.load_state_dict(converted.state)
    ours.eval()
    prompts = [[5, 17, 9, 24, 33, 11, 2], [7, 8], [30, 1, 44, 12]]
    n = 16
    for prompt in prompts:   # one at a time
        theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                             pad_token_id=0, attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        assert generate_lm(ours, [prompt], greedy(n))[0] == theirs[0, len(prompt):].tolist()
    # a left-padded batch, as transformers batches prompts for generate
    length = max(map(len, prompts))
    ids = torch.tensor([[0] * (length - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
    theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, eos_token_id=None,
                         pad_token_id=0)
    assert generate_lm(ours, prompts, greedy(n)) == theirs[:, length:].tolist()


# ---------------------------------------------------------------------------------------------- text

def test_detokenize_and_one_line():
    from uer.data.tokenizers import BertTokenizer
    from uer.data.vocab import Vocab
    from uer.generation.text import detokenize, join_continuation, one_line
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "well", ",", "我", "们", "[unused1]"]
    tok = BertTokenizer(Vocab(tokens))
    ids = lambda *ts: [tokens.index(t) for t in ts]  # noqa: E731
    assert detokenize(tok, ids("play", "##ing", "well", ",", "我", "们")) == "playing well,我们"
    assert detokenize(tok, ids("[MASK]", "[MASK]", "well")) == "[MASK] [MASK] well"
    assert join_continuation("we are", "playing", tok) == "we are playing"
    assert join_continuation("我们", "我们", tok) == "我们我们"
    assert one_line("a\nb\r\nc\rd") == "a\\nb\\nc\\nd"
