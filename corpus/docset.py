"""Document-level decisions in memory bounded by settings, not by the corpus: an exact-duplicate
filter over 64-bit keys, and the k-th smallest of a stream of 64-bit ranks (the validation cut).
"""

from __future__ import annotations

import numpy as np

_EMPTY = np.uint64(0)


class SeenSet:
    """Exact-duplicate filter: an open-addressing hash set of 64-bit document keys in one numpy array
    (load <= 1/2, so 16-32 bytes per distinct document; a Python set would take ~70).

    `add(keys)` returns, per key, whether it is new (not seen before, and its first occurrence within
    `keys`). Keys are uniform hash bits (sha256), so the low bits index the table directly."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.table = np.zeros(capacity, dtype=np.uint64)
        self.n = 0

    def add(self, keys: np.ndarray) -> np.ndarray:
        keys = np.where(keys == _EMPTY, np.uint64(1), keys.astype(np.uint64))  # 0 marks an empty slot
        new = np.zeros(len(keys), dtype=bool)
        if not len(keys):
            return new
        _, first = np.unique(keys, return_index=True)  # duplicates within the batch: first one only
        if 2 * (self.n + len(first)) > len(self.table):
            self._grow(2 * (self.n + len(first)))
        new[first] = self._insert(keys[first])
        return new

    def _grow(self, need: int) -> None:
        old = self.table[self.table != _EMPTY]
        self.table = np.zeros(1 << max(16, int(need - 1).bit_length()), dtype=np.uint64)
        self.n = 0
        self._insert(old)

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys by linear probing, all at once; True where a key was not there yet."""
        mask = np.uint64(len(self.table) - 1)
        pos = keys & mask
        inserted = np.zeros(len(keys), dtype=bool)
        todo = np.arange(len(keys))
        while len(todo):
            slot = self.table[pos[todo]]
            found = slot == keys[todo]
            empty = slot == _EMPTY
            cand = todo[empty]
            slots, win = np.unique(pos[cand], return_index=True)  # one winner per empty slot
            self.table[slots] = keys[cand[win]]
            inserted[cand[win]] = True
            done = found.copy()
            done[np.flatnonzero(empty)[win]] = True
            busy = ~done & ~empty  # an occupied slot holding another key: probe the next one
            pos[todo[busy]] = (pos[todo[busy]] + np.uint64(1)) & mask
            todo = todo[~done]
        self.n += int(inserted.sum())
        return inserted


class KthSmallest:
    """The k-th smallest of a stream of uint64 values in fixed memory: a histogram of the top
    HIST_BITS bits (8 MiB) in a first pass, then the values of the one bucket that holds the k-th in
    a second pass (about n / 2^20 of them)."""

    HIST_BITS = 20

    def __init__(self) -> None:
        self.hist = np.zeros(1 << self.HIST_BITS, dtype=np.int64)
        self.n = 0
        self._bucket: int | None = None
        self._below = 0
        self._values: list[np.ndarray] = []

    def count(self, values: np.ndarray) -> None:
        """First pass."""
        self.hist += np.bincount((values >> np.uint64(64 - self.HIST_BITS)).astype(np.int64),
                                 minlength=len(self.hist))
        self.n += len(values)

    def choose(self, k: int) -> None:
        """Between the passes: fix k (1-based)."""
        if not 1 <= k <= self.n:
            raise ValueError(f"k = {k} outside 1..{self.n}")
        cum = np.cumsum(self.hist)
        self._bucket = int(np.searchsorted(cum, k))
        self._below = int(cum[self._bucket - 1]) if self._bucket else 0
        self._k = k

    def collect(self, values: np.ndarray) -> None:
        """Second pass (the same values, any order)."""
        top = (values >> np.uint64(64 - self.HIST_BITS)).astype(np.int64)
        self._values.append(values[top == self._bucket])

    def result(self) -> int:
        vals = np.sort(np.concatenate(self._values)) if self._values else np.zeros(0, np.uint64)
        return int(vals[self._k - self._below - 1])
