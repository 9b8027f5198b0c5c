"""UL2's mixture of denoisers and GLM's autoregressive blank infilling: their statistics over many samples
(per-denoiser corruption rate and mean span, mode tokens, mixture frequencies; Poisson span lengths,
covered fraction, random Part B order), GLM's 2D positions on a hand example, its attention mask on the
built tensor and through the model, and the processor / model checks.

Words ``w<n>`` of the tiny vocabulary have id n + 5, so tokens can be traced exactly."""

import collections
import math

import numpy as np
import pytest
import torch

from uer.config import MaskingConfig, ModelConfig
from uer.data.collator import PretrainCollator
from uer.data.dataset import IndexedDataset
from uer.data.glm_noising import GlmNoiser, blank_infilling, glm_spans, positive_poisson_lengths
from uer.data.noising import build_noiser, instance_rng
from uer.data.preprocess import build_dataset
from uer.data.processors import build_processor
from uer.data.tokenizers import build_tokenizer
from uer.data.ul2_noising import MODE_TOKENS, STREAM_UL2, UL2_DENOISERS, Ul2Noiser, parse_denoiser_weights
from uer.errors import ConfigError, DataError
from uer.layers.masks import build_attention_mask

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
N_WORDS = 3000
N_SENTINELS = 200
SENTINEL0 = 5 + N_WORDS
NLU, NLG, S2S = range(SENTINEL0 + N_SENTINELS, SENTINEL0 + N_SENTINELS + 3)
SOP, EOP = NLU + 3, NLU + 4
MODE_IDS = {"R": NLU, "X": NLG, "S": S2S}


def write_vocab(path, modes=True, pieces=True) -> str:
    tokens = SPECIALS + [f"w{i}" for i in range(N_WORDS)] + [f"[extra_id_{i}]" for i in range(N_SENTINELS)]
    tokens += ["[NLU]", "[NLG]", "[S2S]"] if modes else ["[unused1]", "[unused2]", "[unused3]"]
    tokens += ["[sop]", "[eop]"] if pieces else []
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path_factory.mktemp("v") / "vocab.txt")).vocab


def instance(n, offset=0):
    return np.array([CLS, *range(5 + offset, 5 + offset + n), SEP])


def collator_for(vocab, noiser, fields=()):
    return PretrainCollator(vocab, ["lm"], MaskingConfig(), 7, list(fields), seq_length=512, max_length=512,
                            noiser=noiser)


# -- UL2 ---------------------------------------------------------------------------------------
def restore_spans(src_body, tgt, sentinel_ids):
    """The text a span-corrupted (inputs, targets) pair stands for: each sentinel of the inputs
    replaced by what follows it in the targets."""
    spans, current = {}, None
    for t in tgt[:-2]:                       # drop the final sentinel and [SEP]
        if t in sentinel_ids:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in src_body:
        out.extend(spans[t] if t in sentinel_ids else [t])
    return out


def test_ul2_per_denoiser_rate_mean_span_and_mode_token(vocab):
    noiser = Ul2Noiser(vocab, 803, seed=3)
    sentinel_ids = set(noiser.sentinels)
    rng = np.random.default_rng(0)
    noise = collections.Counter()
    tokens = collections.Counter()
    spans = collections.Counter()
    expected_spans = collections.Counter()
    splits = []
    for index in range(1400):
        n = int(rng.integers(400, 801))
        seq = instance(n, offset=int(rng.integers(0, 1000)))
        choice, src, tgt = noiser.denoise(seq, index, epoch=0)
        mode, span, density = UL2_DENOISERS[choice]
        assert int(src[0]) == MODE_IDS[mode] and int(src[1]) == CLS and int(src[-1]) == SEP
        assert int(tgt[-1]) == SEP
        body = seq[1:-1].tolist()
        if mode == "S":
            prefix, continuation = src[2:-1].tolist(), tgt[:-1].tolist()
            assert prefix + continuation == body and prefix and continuation
            splits.append(len(prefix) / n)
            continue
        k = sum(1 for t in src.tolist() if t in sentinel_ids)
        assert tgt[0] == noiser.sentinels[0] and tgt[-2] == noiser.sentinels[k]    # in order, final one
        assert restore_spans(src[2:-1].tolist(), tgt.tolist(), sentinel_ids) == body
        noise[choice] += len(tgt) - (k + 1) - 1
        tokens[choice] += n
        spans[choice] += k
        expected_spans[choice] += max(round(round(n * density) / span), 1)
    for choice, (mode, span, density) in enumerate(UL2_DENOISERS):
        if mode == "S":
            continue
        assert abs(noise[choice] / tokens[choice] - density) < 0.003, (choice, noise[choice] / tokens[choice])
        assert spans[choice] == expected_spans[choice]       # T5's rounding of noise / mean span
        mean = noise[choice] / spans[choice]
        # Short texts round 64-token spans to fewer, longer ones (T5's rule); the others are on target.
        assert abs(mean - span) / span < (0.25 if span == 64 else 0.03), (choice, mean)
    # S: the split point is uniform over the text: mean 1/2, spread of a uniform (sd 0.289).
    assert abs(np.mean(splits) - 0.5) < 0.05 and abs(np.std(splits) - 1 / math.sqrt(12)) < 0.04


def test_ul2_mixture_frequencies_follow_the_weights(vocab):
    def frequencies(weights, draws=3000):
        noiser = Ul2Noiser(vocab, 128, seed=1, weights=weights)
        # The draw denoise() makes first (its result is checked against the mode token above).
        counts = collections.Counter(noiser.choose(instance_rng(1, 0, STREAM_UL2, i)) for i in range(draws))
        return np.array([counts[i] / draws for i in range(len(UL2_DENOISERS))])

    assert np.abs(frequencies(None) - 1 / 7).max() < 0.022           # the paper's code: uniform
    by_mode = frequencies("2,1,1")                                     # R, X, S
    assert abs(by_mode[:2].sum() - 0.5) < 0.03 and abs(by_mode[2:6].sum() - 0.25) < 0.025
    assert abs(by_mode[6] - 0.25) < 0.025 and abs(by_mode[0] - by_mode[1]) < 0.04
    seven = frequencies("0,0,0,0,0,1,3")
    assert seven[:5].sum() == 0 and abs(seven[6] - 0.75) < 0.025


def test_ul2_weights_are_parsed_and_bad_ones_refused():
    assert parse_denoiser_weights("1,1,2") == pytest.approx([0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625, 0.5])
    with pytest.raises(ConfigError, match="give 3 weights"):
        parse_denoiser_weights("1,2")
    with pytest.raises(ConfigError, match="comma-separated numbers"):
        parse_denoiser_weights("R=1")
    with pytest.raises(ConfigError, match="not all zero"):
        parse_denoiser_weights("0,0,0")


def test_ul2_is_keyed_by_seed_epoch_and_index(vocab):
    noiser = Ul2Noiser(vocab, 128, seed=5)
    seq = instance(100)
    first = noiser.denoise(seq, 3, 0)
    again = noiser.denoise(seq, 3, 0)
    assert first[0] == again[0] and first[1].tolist() == again[1].tolist()
    draws = {tuple(noiser.denoise(seq, 3, epoch)[1].tolist()) for epoch in range(6)}
    assert len(draws) > 1                                              # fresh every epoch


def test_ul2_needs_the_mode_tokens(tmp_path):
    bare = build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path / "v.txt", modes=False)).vocab
    with pytest.raises(ConfigError, match=r"v\.txt lacks \[NLU\], \[NLG\], \[S2S\]; append them"):
        build_processor("ul2", bare, 128)
    assert set(MODE_TOKENS.values()) == {"[NLU]", "[NLG]", "[S2S]"}


def test_ul2_dataset_collates_to_decoder_fields(vocab, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(f"w{j}" for j in range(i * 60, i * 60 + 60)) for i in range(30)) + "\n")
    tokenizer = build_tokenizer(name="bert", vocab_path=vocab.path)
    build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "ul2", 32, show_progress=False,
                  processor_options={"denoiser_weights": "1,1,1"})
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert dataset.meta["noising"]["kind"] == "ul2" and len(dataset.meta["ul2_denoisers"]) == 7
    assert max(len(dataset[i]["src"]) for i in range(len(dataset))) == 31    # room for the mode token
    noiser = build_noiser(dataset.meta, vocab, 7)
    items = [dataset[i] for i in range(len(dataset))]
    batch = collator_for(vocab, noiser)(items, list(range(len(items))), 0)
    assert set(batch["src"][:, 0].tolist()) <= {NLU, NLG, S2S} and batch["src"].shape[1] <= 32
    n = batch["tgt_seg"].sum(1)
    assert (batch["tgt_in"][:, 0] == CLS).all()
    assert all(int(batch["tgt_out"][i, n[i] - 1]) == SEP for i in range(len(items)))


# -- GLM ---------------------------------------------------------------------------------------
def test_glm_span_lengths_are_poisson_3_and_cover_15_percent():
    rng = np.random.default_rng(0)
    lengths = positive_poisson_lengths(30_000, 3.0, rng)[:-1]           # the last one is cut to fit
    # Poisson(3) conditioned on >= 1 (a blank holds a token): mean 3 / (1 - e^-3) = 3.157.
    assert min(lengths) >= 1 and abs(np.mean(lengths) - 3 / (1 - math.exp(-3))) < 0.05
    assert abs(np.var(lengths) - 2.66) < 0.15        # that distribution's variance, not a geometric's
    covered = total = 0
    all_spans = []
    for _ in range(1000):
        n = int(rng.integers(50, 500))
        spans = glm_spans(n, 0.15, 3.0, rng)
        assert all(b[0] > a[0] + a[1] for a, b in zip(spans, spans[1:]))    # in order, never touching
        assert spans[-1][0] + spans[-1][1] <= n
        covered += sum(length for _, length in spans)
        total += n
        all_spans.extend(length for _, length in spans)
    assert abs(covered / total - 0.15) < 0.002
    assert 2.6 < np.mean(all_spans) < 3.2            # the last span of each text is cut to fit


def test_glm_2d_positions_labels_and_segments_on_a_hand_example():
    #            [CLS] a  b  c  d  e  f  g  h [SEP]
    seq = np.array([CLS, 10, 11, 12, 13, 14, 15, 16, 17, SEP])
    built = blank_infilling(seq, [(1, 2), (5, 1)], order=[1, 0], mask_id=MASK, sop_id=SOP, eop_id=EOP)
    # Part A: [CLS] a [M] d e [M] g h [SEP]; Part B: the second blank first, then the first.
    assert built["src"].tolist() == [CLS, 10, MASK, 13, 14, MASK, 16, 17, SEP, SOP, 15, SOP, 11, 12]
    assert built["seg_a_len"] == 9
    assert built["positions"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 5, 2, 2, 2]
    assert built["positions"][1].tolist() == [0] * 9 + [1, 2, 1, 2, 3]
    assert built["lm_labels"].tolist() == [-100] * 9 + [15, EOP, 11, 12, EOP]


def glm_batch(vocab, count=64, seed=7, lengths=(30, 120)):
    noiser = GlmNoiser(vocab, seed)
    rng = np.random.default_rng(seed)
    items = [{"src": instance(int(rng.integers(*lengths)), offset=i)} for i in range(count)]
    return noiser, items, collator_for(vocab, noiser)(items, list(range(count)), 0)


def test_glm_mask_is_bidirectional_on_part_a_and_causal_on_part_b(vocab):
    _, items, batch = glm_batch(vocab, count=8)
    mask = build_attention_mask("causal_with_prefix", batch["seg"]).attn_mask[:, 0]
    for i in range(8):
        a = int((batch["seg"][i] == 1).sum())
        total = int((batch["seg"][i] > 0).sum())
        m = mask[i, :total, :total]
        assert m[:a, :a].all()                       # Part A: bidirectional
        assert not m[:a, a:].any()                   # Part A never sees Part B
        assert m[a:, :a].all()                       # Part B sees all of Part A
        causal = torch.ones(total - a, total - a, dtype=torch.bool).tril()
        assert torch.equal(m[a:, a:], causal)        # and the earlier Part B tokens only
        assert not mask[i, :total, total:].any()     # nobody sees padding


def test_glm_collated_batch_every_span_opens_with_sop_and_ends_with_eop(vocab):
    _, items, batch = glm_batch(vocab, count=200)
    src, seg, positions = batch["src"], batch["seg"], batch["positions"]
    assert positions.shape == (200, 2, src.shape[1])
    # The lm target predicts Part B alone: its positions and labels, compact, spread back out here.
    part_b = (seg == 2).sum(1)
    assert batch["lm_positions"].shape == batch["lm_labels"].shape == (200, int(part_b.max()))
    labels = torch.full_like(src, -100)
    for i in range(200):
        given = batch["lm_labels"][i] != -100
        assert int(given.sum()) == int(part_b[i])
        labels[i, batch["lm_positions"][i][given]] = batch["lm_labels"][i][given]
    out_of_order = multi = 0
    for i in range(200):
        a = int((seg[i] == 1).sum())
        total = int((seg[i] > 0).sum())
        assert total > len(items[i]["src"])                       # no lookahead token was cut off
        assert (labels[i, :a] == -100).all() and (labels[i, a:total] != -100).all()
        assert (positions[i, 1, :a] == 0).all() and (positions[i, 0, :a] == torch.arange(a)).all()
        starts = [j for j in range(a, total) if int(positions[i, 1, j]) == 1]
        masks = [j for j in range(a) if int(src[i, j]) == MASK]
        assert len(starts) == len(masks) >= 1
        bounds = starts + [total]
        for s, e in zip(bounds, bounds[1:]):
            assert int(src[i, s]) == SOP and int(labels[i, e - 1]) == EOP
            assert positions[i, 1, s:e].tolist() == list(range(1, e - s + 1))
            mask_at = int(positions[i, 0, s])
            assert int(src[i, mask_at]) == MASK and (positions[i, 0, s:e] == mask_at).all()
            assert labels[i, s:e - 1].tolist() == src[i, s + 1:e].tolist()   # inputs shifted = targets
        # The filled text: each [MASK] replaced by its span gives back the instance.
        fill = {int(positions[i, 0, s]): src[i, s + 1:e].tolist() for s, e in zip(bounds, bounds[1:])}
        restored = [t for j in range(a) for t in (fill[j] if j in fill else [int(src[i, j])])]
        assert restored == items[i]["src"].tolist()
        if len(starts) > 1:
            multi += 1
            order = [int(positions[i, 0, s]) for s in starts]
            out_of_order += order != sorted(order)
    assert multi > 100 and 0.3 < out_of_order / multi < 1.0      # shuffled, not always sorted


def test_glm_needs_its_piece_tokens(tmp_path):
    bare = build_tokenizer(name="bert", vocab_path=write_vocab(tmp_path / "v.txt", pieces=False)).vocab
    with pytest.raises(ConfigError, match=r"neither <\|startofpiece\|> nor \[sop\].*append \[sop\] and \[eop\]"):
        build_processor("glm", bare, 128)


def glm_model_config(**changes):
    base = dict(embedding=["word", "glm_pos"], remove_embedding_layernorm=True, emb_size=32, hidden_size=32,
                feedforward_size=64, heads_num=2, layers_num=2, max_seq_length=256, dropout=0.0,
                mask="causal_with_prefix", layernorm_positioning="pre", target=["lm"], tie_weights=True,
                vocab_size=SOP + 2)
    return ModelConfig(**{**base, **changes})


def test_glm_model_part_a_never_sees_part_b_and_positions_matter(vocab):
    from uer.models import build_model
    torch.manual_seed(0)
    model = build_model(glm_model_config()).eval()
    _, items, batch = glm_batch(vocab, count=4)
    with torch.no_grad():
        loss = model(batch)["loss"]
        hidden = model.encode(batch["src"], batch["seg"], batch["positions"])
        # The loss over the gathered Part B positions is the loss over every position with Part A ignored.
        full = torch.full_like(batch["src"], -100)
        full.scatter_(1, batch["lm_positions"], batch["lm_labels"])
        full[:, 0] = -100                      # where padded slots (position 0, label -100) were written
        logits = model.target._modules["lm"].logits(hidden)
        expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), full.flatten(), ignore_index=-100)
        assert torch.isfinite(loss) and torch.allclose(loss, expected, atol=1e-5)
        changed = batch["src"].clone()
        a = int((batch["seg"][0] == 1).sum())
        changed[0, a + 1:] = 100                                        # rewrite Part B
        again = model.encode(changed, batch["seg"], batch["positions"])
        assert torch.allclose(hidden[0, :a], again[0, :a], atol=1e-6)   # Part A unchanged
        assert not torch.allclose(hidden[0, a + 1:], again[0, a + 1:])
        moved = batch["positions"].clone()
        moved[:, 1] = 0
        assert not torch.allclose(model.encode(batch["src"], batch["seg"], moved)[0, a:], hidden[0, a:])
        # Without positions every token is a Part A token: 0 .. L-1 and inner position 0.
        plain = torch.stack([torch.arange(12), torch.zeros(12, dtype=torch.long)])[None]
        src, seg = batch["src"][:1, :12], torch.ones(1, 12, dtype=torch.long)
        assert torch.allclose(model.encode(src, seg), model.encode(src, seg, plain), atol=1e-6)


def test_glm_dataset_and_pretrain_checks(vocab, tmp_path):
    from uer.cli.pretrain import check_model_fits_processor
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(f"w{j}" for j in range(i * 40, i * 40 + 40)) for i in range(10)) + "\n")
    tokenizer = build_tokenizer(name="bert", vocab_path=vocab.path)
    build_dataset(str(corpus), str(tmp_path / "ds"), tokenizer, "glm", 32, show_progress=False)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert dataset.meta["noising"] == {"kind": "glm", "noise_density": 0.15, "poisson_lambda": 3.0}
    assert isinstance(build_noiser(dataset.meta, vocab, 7), GlmNoiser)
    check_model_fits_processor(glm_model_config(), "glm", "ds")
    with pytest.raises(DataError, match="set \"mask\": \"causal_with_prefix\""):
        check_model_fits_processor(glm_model_config(mask="causal"), "glm", "ds")
    with pytest.raises(DataError, match="use \"glm_pos\" instead of \"pos\""):
        check_model_fits_processor(glm_model_config(embedding=["word", "pos"]), "glm", "ds")
    with pytest.raises(DataError, match="for a causal LM"):
        check_model_fits_processor(glm_model_config(target=["mlm"]), "glm", "ds")


def test_glm_base_config_is_bert_base_shaped_with_2d_positions():
    """models/glm/base.json: GLM-Base (Du et al. 2022, "110M", BERT-base shape with BERT's 30,522-token
    WordPiece vocabulary): word + two 512-row position tables, pre-LN with a final norm, tied lm head."""
    import os
    from uer.config import load_config
    from uer.models import build_model
    path = os.path.join(os.path.dirname(__file__), "..", "..", "models", "glm", "base.json")
    c = load_config(path)
    assert (c.layers_num, c.hidden_size, c.heads_num, c.feedforward_size, c.max_seq_length) == (12, 768, 12, 3072, 512)
    assert c.embedding == ["word", "glm_pos"] and c.mask == "causal_with_prefix" and c.target == ["lm"]
    assert c.tie_weights and c.layernorm_positioning == "pre" and c.data_processor == "glm"
    H, F, V = 768, 3072, 30528                       # 30,522 rows padded to a multiple of 64
    layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 2 * 2 * H
    by_hand = V * H + 2 * 512 * H + 12 * layer + 2 * H
    with torch.device("meta"):
        counted = sum(p.numel() for p in build_model(load_config(path, {"vocab_size": 30522})).parameters())
    assert counted == by_hand == 109_287_936


def test_glm_is_keyed_by_seed_epoch_and_index(vocab):
    noiser = GlmNoiser(vocab, seed=5)
    seq = instance(100)
    first, again = noiser.instance(seq, 3, 0), noiser.instance(seq, 3, 0)
    assert all(np.array_equal(first[k], again[k]) for k in ("src", "lm_labels", "positions"))
    assert len({tuple(noiser.instance(seq, 3, epoch)["src"].tolist()) for epoch in range(6)}) > 1


def test_processor_flags_belong_to_their_processor(vocab):
    with pytest.raises(ConfigError, match="--denoiser_weights is an option of the ul2 processor"):
        build_processor("t5", vocab, 128, options={"denoiser_weights": "1,1,1"})
    assert build_processor("glm", vocab, 128, options={"noise_density": 0.2}).noising()["noise_density"] == 0.2
    with pytest.raises(ConfigError, match="--noise_density 1.5 must be between 0 and 1"):
        build_processor("glm", vocab, 128, options={"noise_density": 1.5})
