"""Token files of a prepared split: writing <split>.bin with its checksums, and verifying it.

Two checksums per split (meta.json "splits"): `sha256` of the whole file, computed once while it is
written, and `sampled_sha256`, a cheap check for every training start (issue 16): sha256 over the
file size (8 bytes, little-endian) followed by SAMPLE_BLOCKS blocks of SAMPLE_BLOCK_BYTES bytes at
evenly spaced offsets round_down((size - b) * i / (SAMPLE_BLOCKS - 1)), i = 0..SAMPLE_BLOCKS-1,
b = min(SAMPLE_BLOCK_BYTES, size). It reads 4 MiB whatever the size: it catches a truncated,
replaced or half-copied file, not a single flipped byte (the full sha256 does; `attnres data info`
and a re-run of `attnres data prepare` compute it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.prep.progress import Progress

SAMPLE_BLOCKS = 64
SAMPLE_BLOCK_BYTES = 1 << 16
SAMPLE_RULE = {"blocks": SAMPLE_BLOCKS, "block_bytes": SAMPLE_BLOCK_BYTES,
               "definition": "sha256(uint64le(size) + the blocks at offsets (size - b) * i // (blocks - 1), "
                             "i = 0..blocks-1, b = min(block_bytes, size))"}
_READ = 1 << 22


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / max(counts.sum(), 1)
    return float(-(p * np.log(p)).sum())


def sha256_file(path: Path, log: Callable[[str], None] | None = None) -> str:
    """sha256 of a file; with `log`, progress lines while hashing a large one."""
    h = hashlib.sha256()
    total = path.stat().st_size
    prog = Progress(f"checking {path.name}", total, log, every_s=10.0) if log and total > 1 << 30 else None
    done = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_READ), b""):
            h.update(block)
            done += len(block)
            if prog:
                prog.update(done)
    return h.hexdigest()


def sampled_sha256(path: Path, blocks: int = SAMPLE_BLOCKS, block_bytes: int = SAMPLE_BLOCK_BYTES) -> str:
    """The sampled checksum defined in this module's docstring."""
    size = path.stat().st_size
    b = min(block_bytes, size)
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        for i in range(blocks):
            f.seek((size - b) * i // max(blocks - 1, 1))
            h.update(f.read(b))
    return h.hexdigest()


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


def check_split(path: Path, info: dict, itemsize: int, full: bool,
                log: Callable[[str], None] | None = None) -> str | None:
    """None if the file matches meta.json's record of it, else what is wrong (a phrase)."""
    if not path.exists():
        return "is missing"
    size, expected = path.stat().st_size, info["n_tokens"] * itemsize
    if size != expected:
        return f"is truncated or corrupt: {size:,} bytes, meta.json expects {expected:,}"
    if full and sha256_file(path, log) != info["sha256"]:
        return "is corrupt: its sha256 differs from meta.json"
    return None
