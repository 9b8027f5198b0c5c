"""Deterministic, resumable, rank-sliced batch order.

Epoch e visits the instances in the order of a permutation seeded by (seed, e).  Global batch b of
the epoch is positions [b*G, (b+1)*G) of that order (G = batch_size * world_size) and rank r takes
its slice [r*batch_size, (r+1)*batch_size) — so every rank reads only its own instances, and the
position (epoch, batch) is all a checkpoint needs to continue with the next unseen batch.
"""

from typing import Iterator, List, Tuple

import numpy as np

from uer.errors import DataError


class BatchSampler:
    def __init__(self, num_instances: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, drop_last: bool = True):
        self.num_instances, self.batch_size = num_instances, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle, self.drop_last = shuffle, drop_last
        global_batch = batch_size * world_size
        if num_instances <= 0:
            raise DataError("the dataset is empty: there is nothing to train on")
        if drop_last:
            self.batches_per_epoch = num_instances // global_batch
            if self.batches_per_epoch == 0:
                raise DataError(f"the dataset has {num_instances} instances, fewer than one global batch "
                                f"of {global_batch} (batch_size {batch_size} x {world_size} processes); "
                                "lower --batch_size or build a larger dataset")
        else:
            self.batches_per_epoch = -(-num_instances // global_batch)
        self.epoch, self.batch_in_epoch = 0, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch_in_epoch = int(state["epoch"]), int(state["batch_in_epoch"])

    def order(self, epoch: int) -> np.ndarray:
        order = np.arange(self.num_instances) if not self.shuffle else \
            np.random.default_rng([self.seed, epoch]).permutation(self.num_instances)
        if not self.drop_last and self.world_size > 1:
            # Every rank must run the same number of full batches (or collective ops hang): the
            # last global batch is completed by wrapping around to the start of the order.
            size = self.batches_per_epoch * self.batch_size * self.world_size
            order = np.resize(order, size)
        return order

    def batch_indices(self, epoch: int, batch: int, order: np.ndarray) -> List[int]:
        start = batch * self.batch_size * self.world_size + self.rank * self.batch_size
        return order[start: start + self.batch_size].tolist()

    def iter_epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Tuple[int, int, List[int]]]:
        order = self.order(epoch)
        for b in range(start_batch, self.batches_per_epoch):
            indices = self.batch_indices(epoch, b, order)
            if indices:
                yield epoch, b, indices

    def __iter__(self) -> Iterator[Tuple[int, int, List[int]]]:
        """Endless (epoch, batch, indices) from the current position; the consumer advances the
        position with ``advance`` when it has actually used a batch (prefetching does not count)."""
        epoch, start = self.epoch, self.batch_in_epoch
        while True:
            yield from self.iter_epoch(epoch, start)
            epoch, start = epoch + 1, 0

    def advance(self, epoch: int, batch: int) -> None:
        """Record that batch ``batch`` of ``epoch`` was consumed."""
        if batch + 1 >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch = epoch + 1, 0
        else:
            self.epoch, self.batch_in_epoch = epoch, batch + 1


class CollatedBatches:
    """Map-style view so a DataLoader can fetch and collate whole batches in worker processes:
    item (epoch, batch, indices) -> collated batch tagged with its position."""

    def __init__(self, dataset, collator):
        self.dataset, self.collator = dataset, collator

    def __getitem__(self, key):
        epoch, batch, indices = key
        items = [self.dataset[i] for i in indices]
        out = self.collator(items, indices, epoch)
        out["_position"] = (epoch, batch)
        return out
