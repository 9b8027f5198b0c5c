"""BatchSampler: deterministic epoch permutations, rank slices, exact resume, drop_last."""

import itertools

import numpy as np
import pytest

from uer.data.sampler import BatchSampler, CollatedBatches
from uer.errors import DataError


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_an_epoch_is_a_permutation_split_into_global_batches():
    s = BatchSampler(100, 8, seed=3)
    assert s.batches_per_epoch == 12
    batches = list(s.iter_epoch(0))
    assert [b for _, b, _ in batches] == list(range(12))
    flat = [i for _, _, idx in batches for i in idx]
    assert all(len(idx) == 8 for _, _, idx in batches)
    assert len(set(flat)) == 96 and set(flat) <= set(range(100))
    assert flat != sorted(flat)                                  # shuffled
    assert [i for _, _, idx in BatchSampler(100, 8, seed=3).iter_epoch(0) for i in idx] == flat


def test_epochs_reshuffle_and_seeds_differ():
    s = BatchSampler(50, 5, seed=0)
    e0 = [i for _, _, idx in s.iter_epoch(0) for i in idx]
    e1 = [i for _, _, idx in s.iter_epoch(1) for i in idx]
    assert sorted(e0) == sorted(e1) == list(range(50)) and e0 != e1
    other = [i for _, _, idx in BatchSampler(50, 5, seed=1).iter_epoch(0) for i in idx]
    assert other != e0


def test_no_shuffle_is_sequential():
    s = BatchSampler(10, 3, seed=0, shuffle=False)
    assert [idx for _, _, idx in s.iter_epoch(0)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_slices_are_disjoint_and_cover_the_global_batch(world_size):
    ranks = [BatchSampler(103, 4, seed=9, rank=r, world_size=world_size) for r in range(world_size)]
    single = BatchSampler(103, 4 * world_size, seed=9)
    assert all(r.batches_per_epoch == single.batches_per_epoch == 103 // (4 * world_size) for r in ranks)
    for epoch in (0, 1):
        per_rank = [list(r.iter_epoch(epoch)) for r in ranks]
        for b, (_, _, global_idx) in enumerate(single.iter_epoch(epoch)):
            slices = [per_rank[r][b][2] for r in range(world_size)]
            assert all(len(x) == 4 for x in slices)
            assert sum(slices, []) == global_idx                   # rank order = global order
            assert len(set(sum(slices, []))) == 4 * world_size


def test_iteration_crosses_epochs_endlessly():
    s = BatchSampler(10, 4, seed=0)                              # 2 batches per epoch, 2 dropped
    got = take(s, 7)
    assert [(e, b) for e, b, _ in got] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0)]
    assert got[2][2] == list(s.iter_epoch(1))[0][2]


def test_state_dict_resume_continues_with_the_next_unseen_batch():
    reference = take(BatchSampler(37, 5, seed=11), 20)         # 7 batches per epoch
    for consumed in (0, 1, 6, 7, 8, 13, 19):
        s = BatchSampler(37, 5, seed=11)
        for e, b, _ in take(s, consumed):
            s.advance(e, b)
        state = s.state_dict()
        assert set(state) == {"epoch", "batch_in_epoch"}
        resumed = BatchSampler(37, 5, seed=11)
        resumed.load_state_dict(dict(state))
        assert take(resumed, 20 - consumed) == reference[consumed:], consumed


def test_prefetching_does_not_move_the_position():
    s = BatchSampler(20, 4, seed=0)
    it = iter(s)
    first = [next(it) for _ in range(3)]                         # prefetched, only one consumed
    s.advance(*first[0][:2])
    assert s.state_dict() == {"epoch": 0, "batch_in_epoch": 1}
    assert take(s, 1)[0] == first[1]


def test_advance_crosses_epoch_boundaries():
    s = BatchSampler(12, 4, seed=0)                              # 3 batches per epoch
    s.advance(0, 1)
    assert s.state_dict() == {"epoch": 0, "batch_in_epoch": 2}
    s.advance(0, 2)
    assert s.state_dict() == {"epoch": 1, "batch_in_epoch": 0}
    s.advance(4, 2)
    assert s.state_dict() == {"epoch": 5, "batch_in_epoch": 0}
    assert take(s, 1)[0][:2] == (5, 0)


def test_all_ranks_share_one_position():
    # The position is in global batches, so ranks of the same run all share it.
    ranks = [BatchSampler(40, 2, seed=1, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        for e, b, _ in take(r, 3):
            r.advance(e, b)
    assert ranks[0].state_dict() == ranks[1].state_dict() == {"epoch": 0, "batch_in_epoch": 3}


def test_drop_last_false_yields_the_tail():
    s = BatchSampler(10, 4, seed=2, drop_last=False)
    assert s.batches_per_epoch == 3
    batches = [idx for _, _, idx in s.iter_epoch(0)]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))
    got = take(s, 4)
    assert [(e, b) for e, b, _ in got] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    s.advance(0, 2)
    assert s.state_dict() == {"epoch": 1, "batch_in_epoch": 0}


def test_drop_last_drops_the_tail():
    s = BatchSampler(10, 4, seed=2)
    assert sum(len(idx) for _, _, idx in s.iter_epoch(0)) == 8


@pytest.mark.parametrize("n,batch,world", [(3, 4, 1), (7, 4, 2), (0, 1, 1)])
def test_fewer_instances_than_one_global_batch_is_a_data_error(n, batch, world):
    with pytest.raises(DataError, match="batch|empty"):
        BatchSampler(n, batch, seed=0, world_size=world)


def test_empty_dataset_without_drop_last_is_a_data_error():
    with pytest.raises(DataError):
        BatchSampler(0, 4, seed=0, drop_last=False)


def test_all_ranks_yield_the_same_number_of_batches_without_drop_last():
    counts = [len(list(BatchSampler(5, 2, seed=0, rank=r, world_size=2, drop_last=False).iter_epoch(0)))
              for r in range(2)]
    assert counts[0] == counts[1]


def test_collated_batches_tags_the_position():
    data = [{"x": i} for i in range(10)]

    def collate(items, indices, epoch):
        assert [it["x"] for it in items] == list(indices)
        return {"indices": list(indices), "epoch": epoch}

    out = CollatedBatches(data, collate)[(3, 1, [4, 7])]
    assert out == {"indices": [4, 7], "epoch": 3, "_position": (3, 1)}


def test_works_as_a_dataloader_sampler():
    from torch.utils.data import DataLoader
    data = [{"x": i} for i in range(12)]
    s = BatchSampler(12, 3, seed=5)
    batches = CollatedBatches(data, lambda items, idx, epoch: {"idx": list(idx)})
    loader = iter(DataLoader(batches, sampler=s, batch_size=None, collate_fn=lambda x: x))
    got = [next(loader) for _ in range(5)]
    assert [g["_position"] for g in got] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert [g["idx"] for g in got] == [idx for _, _, idx in take(s, 5)]
    assert np.array_equal(sorted(sum((g["idx"] for g in got[:4]), [])), np.arange(12))


def test_ranks_get_equal_full_batches_without_drop_last():
    # 5 instances, 2 ranks x batch 2: the last global batch wraps around so both ranks run 2 batches.
    per_rank = [list(BatchSampler(5, 2, seed=0, rank=r, world_size=2, drop_last=False).iter_epoch(0))
                for r in range(2)]
    assert [len(b) for b in per_rank] == [2, 2]
    assert all(len(idx) == 2 for batches in per_rank for _, _, idx in batches)
    seen = {i for batches in per_rank for _, _, idx in batches for i in idx}
    assert seen == set(range(5))
