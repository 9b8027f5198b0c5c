"""Linear-chain CRF against brute force over every tag path."""

import itertools

import pytest
import torch

from uer.errors import ConfigError
from uer.layers.crf import CRF, compact

K = 3


def random_crf(seed: int) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(K)
    with torch.no_grad():                       # larger than the init range, so paths differ clearly
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf


def path_score(crf: CRF, em: torch.Tensor, path) -> torch.Tensor:
    """Score of one path over the emissions of one row (n, K), written out term by term."""
    s = crf.start_transitions[path[0]] + em[0, path[0]] + crf.end_transitions[path[-1]]
    for t in range(1, len(path)):
        s = s + crf.transitions[path[t - 1], path[t]] + em[t, path[t]]
    return s


def brute_force(crf: CRF, em: torch.Tensor):
    """(log Z, best path) of one row by enumerating all K^n paths."""
    paths = list(itertools.product(range(K), repeat=em.size(0)))
    scores = torch.stack([path_score(crf, em, p) for p in paths])
    return torch.logsumexp(scores, 0), list(paths[int(scores.argmax())])


def prefix_mask(lengths, width):
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]


MASKS = [[5, 5, 5], [5, 3, 1], [1, 2, 4], [2, 5, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lengths", MASKS)
def test_partition_nll_and_viterbi_equal_brute_force(seed, lengths):
    crf = random_crf(seed)
    em = torch.randn(len(lengths), 5, K, generator=torch.Generator().manual_seed(seed + 10)) * 2
    tags = torch.randint(0, K, (len(lengths), 5), generator=torch.Generator().manual_seed(seed + 20))
    mask = prefix_mask(lengths, 5)
    tags = torch.where(mask, tags, torch.full_like(tags, -100))   # padding labels are never looked at
    log_z = crf.log_partition(em, mask)
    nll = crf.neg_log_likelihood(em, tags, mask)
    paths = crf.decode(em, mask)
    for b, n in enumerate(lengths):
        if n == 0:
            assert log_z[b].item() == 0.0 and nll[b].item() == 0.0 and paths[b] == []
            continue
        want_z, want_path = brute_force(crf, em[b, :n])
        gold = path_score(crf, em[b, :n], tags[b, :n].tolist())
        assert torch.allclose(log_z[b], want_z, atol=1e-5), (b, log_z[b], want_z)
        assert torch.allclose(nll[b], want_z - gold, atol=1e-5)
        assert paths[b] == want_path
    assert (nll >= -1e-6).all()                 # a probability is at most 1


def test_gradients_reach_every_parameter_and_the_emissions():
    crf = random_crf(3)
    em = torch.randn(2, 4, K, requires_grad=True)
    tags = torch.randint(0, K, (2, 4))
    crf.neg_log_likelihood(em, tags, prefix_mask([4, 2], 4)).mean().backward()
    for name, p in crf.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert em.grad.abs().sum() > 0
    assert em.grad[1, 2:].abs().sum() == 0       # masked positions take no part


def test_gradient_of_transitions_matches_finite_differences():
    crf = random_crf(4).double()
    em = torch.randn(1, 4, K, dtype=torch.float64)
    tags = torch.tensor([[0, 2, 1, 1]])
    mask = prefix_mask([4], 4)
    # The CRF computes in float32 internally, so compare a float64 reference against its float32 result.
    def f(trans):
        crf.transitions.data = trans
        return crf.neg_log_likelihood(em, tags, mask).double().sum()
    base = crf.transitions.detach().clone()
    crf.transitions.grad = None
    crf.neg_log_likelihood(em, tags, mask).sum().backward()
    grad = crf.transitions.grad.clone()
    h = 1e-3
    for i, j in [(0, 2), (2, 1), (1, 1), (1, 0)]:
        up, down = base.clone(), base.clone()
        up[i, j] += h
        down[i, j] -= h
        numeric = (f(up) - f(down)) / (2 * h)
        assert abs(numeric.item() - grad[i, j].item()) < 1e-3, (i, j)
    # (1, 0) never occurs in the gold path: its gradient is the expected count alone, positive.
    assert grad[1, 0] > 0


def test_bfloat16_autocast_gives_finite_float32_results():
    crf = random_crf(5)
    em = (torch.randn(3, 6, K) * 30).requires_grad_()  # large scores: a naive exp would overflow
    tags = torch.randint(0, K, (3, 6))
    mask = prefix_mask([6, 4, 1], 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = crf.neg_log_likelihood(em.to(torch.bfloat16), tags, mask)
        paths = crf.decode(em.to(torch.bfloat16), mask)
    assert nll.dtype == torch.float32 and torch.isfinite(nll).all()
    nll.sum().backward()
    assert torch.isfinite(crf.transitions.grad).all() and torch.isfinite(em.grad).all()
    assert [len(p) for p in paths] == [6, 4, 1]
    ref = crf.neg_log_likelihood(em.detach().to(torch.bfloat16).float(), tags, mask)
    assert torch.allclose(nll, ref, atol=1e-4)


def test_compact_moves_selected_positions_left_in_order():
    values = torch.tensor([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24], [30, 31, 32, 33, 34]])
    keep = torch.tensor([[0, 1, 0, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out, mask = compact(values, keep)
    assert out.tolist() == [[11, 13, 14], [20, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    em = torch.arange(3 * 5 * 2).reshape(3, 5, 2).float()
    em_c, mask_e = compact(em, keep)
    assert torch.equal(mask_e, mask)
    assert em_c[0].tolist() == [em[0, 1].tolist(), em[0, 3].tolist(), em[0, 4].tolist()]
    assert em_c[2].abs().sum() == 0


def test_compacted_nll_equals_brute_force_over_the_selected_positions():
    """The tagger's use: labels only at the first piece of each word (IGNORE elsewhere)."""
    crf = random_crf(6)
    em = torch.randn(2, 6, K)
    labels = torch.tensor([[-100, 1, -100, 2, 0, -100], [-100, 2, 2, -100, -100, -100]])
    em_c, mask = compact(em, labels.ne(-100))
    tags_c, _ = compact(labels, labels.ne(-100))
    nll = crf.neg_log_likelihood(em_c, tags_c, mask)
    for b in range(2):
        pos = labels[b].ne(-100).nonzero().flatten()
        want_z, _ = brute_force(crf, em[b, pos])
        want = want_z - path_score(crf, em[b, pos], labels[b, pos].tolist())
        assert torch.allclose(nll[b], want, atol=1e-5)
    assert [len(p) for p in crf.decode(em_c, mask)] == [3, 2]


def test_mask_with_holes_is_refused_with_the_fix():
    crf = CRF(K)
    em = torch.randn(1, 3, K)
    with pytest.raises(ConfigError, match="compact"):
        crf.neg_log_likelihood(em, torch.zeros(1, 3, dtype=torch.long),
                               torch.tensor([[True, False, True]]))
    with pytest.raises(ConfigError, match="emissions"):
        crf.decode(torch.randn(1, 3, K + 1), torch.ones(1, 3, dtype=torch.bool))


def test_crf_tagger_head_outputs_the_viterbi_path_in_eval_mode():
    from uer.config import config_from_dict
    from uer.tasks.heads import build_task_model
    config = config_from_dict({"embedding": ["word", "pos", "seg"], "vocab_size": 20, "emb_size": 8,
                               "hidden_size": 8, "feedforward_size": 16, "heads_num": 2, "layers_num": 1,
                               "max_seq_length": 16, "labels_num": 3, "dropout": 0.0})
    torch.manual_seed(0)
    model = build_task_model(config, "crf_tagger").eval()
    with torch.no_grad():
        model.head.crf.transitions.normal_(0, 2.0)
    src = torch.randint(5, 20, (2, 6))
    seg = torch.ones_like(src)
    words = torch.tensor([[0, 1, 1, 0, 1, 1], [0, 1, 0, 1, 0, 0]], dtype=torch.bool)
    out = model({"src": src, "seg": seg, "word_mask": words})["logits"]
    emissions = model.head.output(model.encode(src, seg))
    for b in range(2):
        positions = torch.nonzero(words[b]).flatten()
        em = emissions[b, positions][None].float()
        expected = model.head.crf.decode(em, torch.ones(1, len(positions), dtype=torch.bool))[0]
        assert out[b, positions].argmax(-1).tolist() == expected
        assert out[b, ~words[b]].abs().sum() == 0          # non-word positions are never decoded
