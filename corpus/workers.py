"""The worker processes of corpus/stream.py: one work unit -> the unit's files.

Per unit, under <work>/units/: <i>.tok (token ids, each document followed by the end-of-document
token), <i>.len.npy (tokens per document) and <i>.idx.npy (per document: sha256 of its text and its
split rank, the first 8 bytes big-endian of sha256(b"<seed>|" + text)); each written under a
temporary name and renamed, so a unit file that exists is complete. The hash-only pass (tokenizer
"bpe", before the BPE is trained) writes only <i>.idx.npy.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sys
from array import array
from itertools import chain
from pathlib import Path

import numpy as np

from corpus.shards import Consumed, Unit, read_unit
from corpus.tokenizer import HfTokenizer

IDX_DTYPE = np.dtype([("digest", "V32"), ("rank", "<u8")])


class UnitFiles:
    """The files of unit i in a work directory, and whether a pass finished it."""

    def __init__(self, work: Path, i: int) -> None:
        base = work / "units" / f"{i:06d}"
        self.tok, self.len, self.idx, self.keep = (Path(f"{base}{s}") for s in (".tok", ".len.npy", ".idx.npy", ".keep.npy"))

    def hashed(self) -> bool:
        return self.idx.exists()

    def tokenized(self, itemsize: int) -> bool:
        if not (self.idx.exists() and self.len.exists() and self.tok.exists()):
            return False
        lens = np.load(self.len, allow_pickle=False)
        return self.tok.stat().st_size == (int(lens.sum()) + len(lens)) * itemsize


_W: dict = {}  # this worker's settings (init)


def _die_with_parent(parent: int) -> None:
    """Workers end when the main process dies, even by SIGKILL (Linux), instead of lingering."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)


def init_worker(root: Path, column: str, seed: int, tok: tuple, dtype: str, batch_chars: int, work: Path,
          counters, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool ends its workers with SIGTERM
    _die_with_parent(parent)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker: the workers are the parallelism
    hf = None
    if len(tok) > 1:  # ("hf" | "bpe", path, eot id); ("byte",) and the hash-only pass need no file
        hf = HfTokenizer.from_file(Path(tok[1]), tok[0], tok[2])
        hf.plain_text_specials()
    _W.update(root=root, column=column, prefix=b"%d|" % seed, tok=hf, dtype=np.dtype(dtype),
              batch=batch_chars, work=work, counters=counters)


def _encode(batch: list[str], raws: list[bytes]) -> tuple[np.ndarray, list[int]]:
    tok, dtype = _W["tok"], _W["dtype"]
    if tok is None:  # bytes: each document then byte 0
        return np.frombuffer(b"\x00".join(raws) + b"\x00", dtype=np.uint8).astype(dtype), list(map(len, raws))
    ids = tok.encode_batch(batch)
    lens = list(map(len, ids))
    for row in ids:
        row.append(tok.eot_id)
    return np.fromiter(chain.from_iterable(ids), dtype=dtype, count=sum(lens) + len(ids)), lens


def work_unit(job: tuple[Unit, bool]) -> int:
    unit, tokenize = job
    files, consumed, counters = UnitFiles(_W["work"], unit.index), Consumed(), _W["counters"]
    suffix = f".{os.getpid()}.tmp"
    digests, ranks, lens = bytearray(), array("Q"), array("I")  # 44 bytes per document
    out = open(f"{files.tok}{suffix}", "wb") if tokenize else None
    reported = 0

    def flush(batch: list[str]) -> None:
        nonlocal reported
        raws = [d.encode("utf-8") for d in batch]
        for r in raws:
            digests.extend(hashlib.sha256(r).digest())
        ranks.extend(int.from_bytes(hashlib.sha256(_W["prefix"] + r).digest()[:8], "big") for r in raws)
        n_tok = 0
        if out is not None and raws:
            arr, n = _encode(batch, raws)
            out.write(arr.data)
            lens.extend(n)
            n_tok = len(arr)
        with counters.get_lock():
            for k, v in enumerate((len(raws), sum(map(len, raws)), n_tok, consumed.bytes - reported)):
                counters[k] += v
        reported = consumed.bytes

    batch, chars = [], 0
    for doc in read_unit(_W["root"], unit, _W["column"], consumed):
        batch.append(doc)
        chars += len(doc)
        if chars >= _W["batch"]:
            flush(batch)
            batch, chars = [], 0
    flush(batch)
    consumed.bytes = unit.weight  # readers estimate; the unit is whole now
    flush([])
    if out is not None:
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(f"{files.tok}{suffix}", files.tok)
        save_npy(files.len, np.frombuffer(lens, dtype=np.uint32), suffix)
    rec = np.zeros(len(ranks), dtype=IDX_DTYPE)
    rec["digest"] = np.frombuffer(digests, dtype="V32")
    rec["rank"] = np.frombuffer(ranks, dtype=np.uint64)
    save_npy(files.idx, rec, suffix)
    return unit.index


def save_npy(path: Path, arr: np.ndarray, suffix: str) -> None:
    tmp = Path(f"{path}{suffix}")
    with open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    os.replace(tmp, path)
