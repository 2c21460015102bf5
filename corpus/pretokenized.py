"""`attnres data prepare --token-files`: pre-tokenized uint16/uint32 files (raw or .npy) -> splits.

The files are cut into pieces of TOKEN_CHUNK tokens, which are split into train and validation like
documents (a seeded hash of each piece's position decides; corpus.inmemory.split_order).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from corpus.tokenfile import SplitWriter
from corpus.tokenizer import MAX_VOCAB
from records.tokens import DataError, dtype_for

TOKEN_CHUNK = 1 << 16  # pre-tokenized files are cut into "documents" of this many tokens for the split


def open_token_file(path: Path, token_dtype: str | None) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"token file {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim != 1 or arr.dtype not in (np.uint16, np.uint32):
            raise DataError(f"{path}: expected a 1-D uint16 or uint32 array, got {arr.dtype} of shape "
                            f"{arr.shape}; fix: save token ids with np.save(path, ids.astype(np.uint32))")
        return arr
    if token_dtype not in ("uint16", "uint32"):
        raise DataError(f"raw token file {path}: its dtype is unknown; fix: pass --token-dtype uint16 "
                        "or --token-dtype uint32 (or save it as .npy)")
    dtype = np.dtype(token_dtype).newbyteorder("<")
    size = path.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise DataError(f"{path} has {size} bytes, not a whole number of {token_dtype} tokens; fix: check "
                        "--token-dtype and that the file is complete")
    return np.memmap(path, dtype=dtype, mode="r")


def write_token_splits(tmp: Path, files: list[Path], token_dtype: str | None, vocab_size: int | None,
                       order: Callable[[list[bytes]], tuple[list[int], list[int]]],
                       log: Callable[[str], None]) -> tuple[dict, dict]:
    """tmp/{train,val}.bin from token files; `order(keys)` gives the (train, val) piece indices."""
    arrays = [open_token_file(f, token_dtype) for f in files]
    top = max(int(a[i:i + (1 << 24)].max()) for a in arrays for i in range(0, len(a), 1 << 24))
    if vocab_size is None:
        vocab_size = top + 1
        log(f"  vocabulary size taken from the largest token id: {vocab_size}")
        if vocab_size > MAX_VOCAB:
            raise DataError(f"token id {top} is larger than any real vocabulary ({MAX_VOCAB}); fix: check "
                            "--token-dtype and the files")
    elif top >= vocab_size:
        raise DataError(f"token id {top} found but --vocab-size is {vocab_size}; fix: pass the "
                        f"tokenizer's vocabulary size (> {top})")
    pieces = [(a, s) for a in arrays for s in range(0, len(a), TOKEN_CHUNK)]
    keys = [b"%d:%d" % (i, s) for i, a in enumerate(arrays) for s in range(0, len(a), TOKEN_CHUNK)]
    dtype = dtype_for(vocab_size)
    splits = {}
    for split, idx in zip(("train", "val"), order(keys)):
        w = SplitWriter(tmp / f"{split}.bin", dtype, vocab_size)
        for i in idx:
            a, s = pieces[i]
            w.write(np.asarray(a[s:s + TOKEN_CHUNK]), 1)
        splits[split] = w.close()
        log(f"  {split}: {w.n_docs:,} pieces of <= {TOKEN_CHUNK:,} tokens -> {w.n_tokens:,} tokens")
    return splits, {"kind": "pretokenized", "vocab_size": vocab_size, "dtype": dtype, "eot_id": None}
