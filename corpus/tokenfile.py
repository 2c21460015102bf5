"""Writing a prepared split (<split>.bin) with its checksums; the format and the reader's checks are
records/tokens.py (sampled checksum rule, size and sha256 checks)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from records.tokens import entropy, sampled_sha256


class SplitWriter:
    """Appends token arrays to <split>.bin, keeping the sha256, token and document counts, unigram counts."""

    def __init__(self, path: Path, dtype: np.dtype, vocab_size: int) -> None:
        self.path, self.dtype = path, dtype
        self._f = open(path, "wb")
        self._sha = hashlib.sha256()
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.n_tokens = self.n_docs = 0

    def write(self, ids: np.ndarray, n_docs: int) -> None:
        buf = np.ascontiguousarray(ids, dtype=self.dtype)
        self._f.write(buf.data)
        self._sha.update(buf.data)
        if len(buf):
            self.counts += np.bincount(buf, minlength=len(self.counts))[: len(self.counts)]
        self.n_tokens += len(buf)
        self.n_docs += n_docs

    def close(self) -> dict:
        self._f.close()
        return {"file": self.path.name, "n_tokens": self.n_tokens, "n_docs": self.n_docs,
                "sha256": self._sha.hexdigest(), "sampled_sha256": sampled_sha256(self.path),
                "unigram_entropy": entropy(self.counts)}
