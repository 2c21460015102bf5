"""Prepared token data, the reader's side: the one definition of the format `attnres data prepare`
writes (its writer is corpus/) and training, planning and sweeps read. numpy only, no torch.

    <data dir>/meta.json     "format": FORMAT; vocab_size, dtype (dtype_for), "byteorder": "little",
                             tokenizer, eot_id; "splits": per split (SPLITS) its file, n_tokens,
                             n_docs, sha256 (whole file), sampled_sha256 (below) and unigram_entropy;
                             "checksum_sample": SAMPLE_RULE; "params" and the "command" that recreates it
    <data dir>/<split>.bin   token ids, raw little-endian uint16 (vocab <= 65536) or uint32

    from records.tokens import default_data_dir, load_tokens
    train = load_tokens(default_data_dir(), "train")     # numpy.memmap, size and sha256 checked

Two checksums per split. ``sha256`` of the whole file is computed once while it is written;
``sampled_sha256`` is a cheap check for every training start (issue 16): sha256 over the file size
(8 bytes, little-endian) followed by SAMPLE_BLOCKS blocks of SAMPLE_BLOCK_BYTES bytes at evenly
spaced offsets round_down((size - b) * i / (SAMPLE_BLOCKS - 1)), i = 0..SAMPLE_BLOCKS-1,
b = min(SAMPLE_BLOCK_BYTES, size). It reads 4 MiB whatever the size, so a 238 GB split costs a few
seeks at every start and requeue instead of minutes of hashing per rank: it catches a truncated,
replaced or half-copied file, not a single flipped byte between samples (the full sha256 does;
``attnres data info`` and a re-run of ``attnres data prepare`` compute it). A training process runs
``check_split`` on one rank and shares the verdict (harness.train). Preparations made before the
sampled checksum existed are checked in full, with a note saying how to make starts cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from records.paths import data_root
from records.progress import ByteProgress

__all__ = ["FORMAT", "SPLITS", "DataError", "DEFAULT_CORPUS", "FALLBACK_CORPUS", "BUILTIN_CORPORA", "DEFAULT_BPE_VOCAB",
           "SAMPLE_BLOCKS", "SAMPLE_BLOCK_BYTES", "SAMPLE_RULE", "data_root", "default_data_dir", "dtype_for",
           "entropy", "sha256_file", "sampled_sha256", "split_problem", "complete_meta", "fix_command",
           "read_meta", "load_tokens", "check_split", "unigram_entropy"]

FORMAT = "attnres-tokens/1"  # meta.json "format"; readers refuse other values
SPLITS = ("train", "val")
# the built-in corpora (corpus/corpora.py defines them; tests/test_corpora.py checks the names agree):
# their names are what default directories are called, which the errors' fix commands need
DEFAULT_CORPUS = "wiki"
FALLBACK_CORPUS = "debian"  # needs apt (Debian 12)
BUILTIN_CORPORA = (DEFAULT_CORPUS, FALLBACK_CORPUS)
DEFAULT_BPE_VOCAB = 4096

SAMPLE_BLOCKS = 64
SAMPLE_BLOCK_BYTES = 1 << 16
SAMPLE_RULE = {"blocks": SAMPLE_BLOCKS, "block_bytes": SAMPLE_BLOCK_BYTES,
               "definition": "sha256(uint64le(size) + the blocks at offsets (size - b) * i // (blocks - 1), "
                             "i = 0..blocks-1, b = min(block_bytes, size))"}
_READ = 1 << 22


class DataError(Exception):
    """Data is missing, corrupt or cannot be fetched or prepared; the message says how to fix it."""


def default_data_dir(corpus: str = DEFAULT_CORPUS, tokenizer: str = "byte", vocab_size: int | None = None) -> Path:
    """<data root>/<corpus>-<tokenizer>, e.g. data/wiki-byte; BPE adds its vocabulary (wiki-bpe4096),
    a tokenizer file its own (user-shards-hf50257). The data root: records/paths.py."""
    if tokenizer == "bpe":
        tokenizer = f"bpe{vocab_size or DEFAULT_BPE_VOCAB}"
    elif tokenizer == "hf":
        tokenizer = f"hf{vocab_size}"
    return data_root() / f"{corpus}-{tokenizer}"


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of a distribution given by counts."""
    p = counts[counts > 0] / max(counts.sum(), 1)
    return float(-(p * np.log(p)).sum())


# --------------------------------------------------------------------------------------------------
# Checksums


def sha256_file(path: Path, log: Callable[[str], None] | None = None) -> str:
    """sha256 of a file; with `log`, progress lines while hashing a large one (over 1 GiB)."""
    h = hashlib.sha256()
    total = Path(path).stat().st_size
    prog = ByteProgress(f"checking {Path(path).name}", total, log, every_s=10.0) if log and total > 1 << 30 else None
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
    size = Path(path).stat().st_size
    b = min(block_bytes, size)
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        for i in range(blocks):
            f.seek((size - b) * i // max(blocks - 1, 1))
            h.update(f.read(b))
    return h.hexdigest()


def split_problem(path: Path, info: dict, itemsize: int, full: bool,
                  log: Callable[[str], None] | None = None) -> str | None:
    """None if a split's file matches meta.json's record of it (size; with `full`, also sha256), else
    what is wrong (a phrase)."""
    if not path.exists():
        return "is missing"
    size, expected = path.stat().st_size, info["n_tokens"] * itemsize
    if size != expected:
        return f"is truncated or corrupt: {size:,} bytes, meta.json expects {expected:,}"
    if full and sha256_file(path, log) != info["sha256"]:
        return "is corrupt: its sha256 differs from meta.json"
    return None


def complete_meta(d: Path) -> dict | None:
    """meta.json of `d` if it is a complete prepared set of this format (every split present with its
    recorded size), else None; never raises."""
    try:
        meta = json.loads((Path(d) / "meta.json").read_text())
        item = np.dtype(meta["dtype"]).itemsize
        ok = meta.get("format") == FORMAT and all(
            (Path(d) / s["file"]).stat().st_size == s["n_tokens"] * item for s in meta["splits"].values())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if ok else None


# --------------------------------------------------------------------------------------------------
# Reading


def fix_command(d: Path, meta: dict | None = None) -> str:
    """'fix: run `attnres data prepare ...`' for a directory, as exact as what we know about it allows."""
    force = " --force" if d.is_dir() and any(d.iterdir()) else ""
    if meta and "command" in meta:
        return f"fix: run `{meta['command']}{force}`"
    for name in BUILTIN_CORPORA:
        for tok in ("byte", "bpe"):
            if d.resolve() == default_data_dir(name, tok).resolve():
                extra = " --tokenizer bpe" if tok == "bpe" else ""
                return f"fix: run `attnres data prepare --corpus {name}{extra} --out {d}{force}`"
    return f"fix: run `attnres data prepare --out {d}{force}` (plus --corpus/--tokenizer/--source-dir as needed)"


def read_meta(data_dir: str | Path) -> dict:
    """meta.json of a prepared directory; DataError (saying how to prepare it) if absent or unreadable."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"data directory {d} does not exist; {fix_command(d)}")
    path = d / "meta.json"
    if not path.exists():
        raise DataError(f"data directory {d} has no meta.json (never prepared, or interrupted); "
                        f"{fix_command(d)}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({e}); {fix_command(d)}") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}, this code reads {FORMAT!r}; "
                        f"{fix_command(d, meta)}")
    return meta


def load_tokens(data_dir: str | Path, split: str, verify: bool = True) -> np.memmap:
    """Token ids of a split as a read-only memmap, checked against meta.json (size, and sha256 if verify)."""
    d = Path(data_dir)
    meta = read_meta(d)
    if split not in meta["splits"]:
        raise DataError(f"{d} has no split {split!r}; use one of {sorted(meta['splits'])}")
    info = meta["splits"][split]
    path = d / info["file"]
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    if not path.exists():
        raise DataError(f"{path} is missing; {fix_command(d, meta)}")
    size, expected = path.stat().st_size, info["n_tokens"] * dtype.itemsize
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt: {size:,} bytes, meta.json expects {expected:,} "
                        f"({info['n_tokens']:,} {meta['dtype']} tokens); {fix_command(d, meta)}")
    if verify and sha256_file(path) != info["sha256"]:
        raise DataError(f"{path} is corrupt: its sha256 differs from meta.json; {fix_command(d, meta)}")
    return np.memmap(path, dtype=dtype, mode="r")


def check_split(data_dir: str | Path, split: str) -> str:
    """The start-of-training check: one split's size and sampled checksum against meta.json (the full
    sha256 for preparations older than sampled checksums); DataError (with the fix) if they differ.
    Returns what was checked, for the run's log."""
    d = Path(data_dir)
    meta = read_meta(d)
    load_tokens(d, split, verify=False)  # existence and exact size
    info = meta["splits"][split]
    path = d / info["file"]
    want = info.get("sampled_sha256")
    if want:
        if sampled_sha256(path) != want:
            raise DataError(f"{path} is corrupt: its sampled checksum differs from meta.json; "
                            f"{fix_command(d, meta)}")
        return f"{split}: size and sampled checksum ok"
    if sha256_file(path) != info["sha256"]:
        raise DataError(f"{path} is corrupt: its sha256 differs from meta.json; {fix_command(d, meta)}")
    return (f"{split}: size and full sha256 ok (prepared before sampled checksums: every start hashes the whole "
            f"file; re-prepare with --force to make starts cheap)")


def unigram_entropy(data_dir: str | Path, split: str = "train") -> float:
    """Entropy (nats/token) of the split's token frequencies: the loss of the best context-free model.

    A trained language model's validation loss should be clearly below this.
    """
    tokens = load_tokens(data_dir, split, verify=False)
    counts = np.zeros(read_meta(data_dir)["vocab_size"], dtype=np.int64)
    for i in range(0, len(tokens), 1 << 24):
        counts += np.bincount(tokens[i:i + (1 << 24)], minlength=len(counts))[: len(counts)]
    return entropy(counts)
