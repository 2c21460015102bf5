"""The worker processes of corpus/stream.py: one work unit -> the unit's files.

Per unit, under <work>/units/: <i>.tok (token ids, each document followed by the end-of-document
token), <i>.len.npy (tokens per document) and <i>.idx.npy (per document: sha256 of its text and its
split rank, the first 8 bytes big-endian of sha256(b"<seed>|" + text)); each written under a
temporary name, fsynced and renamed (records.rundir.atomic_write), so a unit file that exists is
complete. The hash-only pass (tokenizer "bpe", before the BPE is trained) writes only <i>.idx.npy.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sys
import time
from array import array
from itertools import chain
from pathlib import Path

import numpy as np

from corpus.shards import Consumed, Unit, read_unit
from corpus.tokenizer import HfTokenizer, load_tokenizer_file
from records.rundir import atomic_write

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


# what a worker's CPU seconds go to, summed over workers (corpus/stream.py reports them):
# read = parsing the shard and cleaning documents; hash = UTF-8 and the two sha256 per document;
# tokenize = the tokenizer and the token array; write = the unit's files
STAGES = ("read", "hash", "tokenize", "write")


def init_worker(root: Path, column: str, seed: int, tok: tuple, dtype: str, batch_chars: int, work: Path,
                counters, stage_s, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool ends its workers with SIGTERM
    _die_with_parent(parent)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker: the workers are the parallelism
    hf = None
    if tok[0] == "hf":  # ("hf", path, --eot-token): a fork inherits the main process's parse of the file
        hf = load_tokenizer_file(Path(tok[1]), tok[2])
    elif len(tok) > 1:  # ("bpe", path, eot id); ("byte",) and the hash-only pass need no file
        hf = HfTokenizer.from_file(Path(tok[1]), tok[0], tok[2])
        hf.plain_text_specials()
    _W.update(root=root, column=column, prefix=b"%d|" % seed, tok=hf, dtype=np.dtype(dtype),
              batch=batch_chars, work=work, counters=counters, stage_s=stage_s)


def _encode(batch: list[str], raws: list[bytes]) -> tuple[np.ndarray, list[int]]:
    tok, dtype = _W["tok"], _W["dtype"]
    if tok is None:  # bytes: each document then byte 0
        return np.frombuffer(b"\x00".join(raws) + b"\x00", dtype=np.uint8).astype(dtype), list(map(len, raws))
    ids = tok.encode_batch(batch)
    lens = list(map(len, ids))
    for row in ids:
        row.append(tok.eot_id)
    return np.fromiter(chain.from_iterable(ids), dtype=dtype, count=sum(lens) + len(ids)), lens


class _UnitWork:
    """One unit's documents read in batches of about batch_chars characters: hashed, tokenized into
    `out` (None: the hash-only pass), counted into the shared progress counters and stage clocks."""

    def __init__(self, unit: Unit) -> None:
        self.unit, self.consumed = unit, Consumed()
        self.digests, self.ranks, self.lens = bytearray(), array("Q"), array("I")  # 44 bytes per document
        self.spent = dict.fromkeys(STAGES, 0.0)
        self.reported = 0

    def run(self, out) -> None:  # noqa: ANN001 - a binary file or None
        clock = time.process_time
        batch, chars, t = [], 0, clock()
        for doc in read_unit(_W["root"], self.unit, _W["column"], self.consumed):
            batch.append(doc)
            chars += len(doc)
            if chars >= _W["batch"]:
                self.spent["read"] += clock() - t
                self._flush(batch, out)
                batch, chars, t = [], 0, clock()
        self.spent["read"] += clock() - t
        self._flush(batch, out)
        self.consumed.bytes = self.unit.weight  # readers estimate; the unit is whole now
        self._flush([], out)

    def _flush(self, batch: list[str], out) -> None:  # noqa: ANN001
        clock, t0 = time.process_time, time.process_time()
        raws = [d.encode("utf-8") for d in batch]
        for r in raws:
            self.digests.extend(hashlib.sha256(r).digest())
        self.ranks.extend(int.from_bytes(hashlib.sha256(_W["prefix"] + r).digest()[:8], "big") for r in raws)
        n_tok, t1 = 0, clock()
        if out is not None and raws:
            arr, n = _encode(batch, raws)
            t2 = clock()
            out.write(arr.data)
            self.lens.extend(n)
            n_tok = len(arr)
            self.spent["write"] += clock() - t2
            self.spent["tokenize"] += t2 - t1
        self.spent["hash"] += t1 - t0
        counters = _W["counters"]
        with counters.get_lock():
            for k, v in enumerate((len(raws), sum(map(len, raws)), n_tok, self.consumed.bytes - self.reported)):
                counters[k] += v
        self.reported = self.consumed.bytes

    def report_time(self) -> None:
        stage_s = _W["stage_s"]
        with stage_s.get_lock():
            for k, name in enumerate(STAGES):
                stage_s[k] += self.spent[name]


def work_unit(job: tuple[Unit, bool]) -> int:
    """Write one unit's files (tokenize: all three; else the hash-only pass's <i>.idx.npy)."""
    unit, tokenize = job
    files, w = UnitFiles(_W["work"], unit.index), _UnitWork(unit)
    if tokenize:
        atomic_write(files.tok, w.run)
        t = time.process_time()
        save_npy(files.len, np.frombuffer(w.lens, dtype=np.uint32))
    else:
        w.run(None)
        t = time.process_time()
    rec = np.zeros(len(w.ranks), dtype=IDX_DTYPE)
    rec["digest"] = np.frombuffer(w.digests, dtype="V32")
    rec["rank"] = np.frombuffer(w.ranks, dtype=np.uint64)
    save_npy(files.idx, rec)
    w.spent["write"] += time.process_time() - t
    w.report_time()
    return unit.index


def save_npy(path: Path, arr: np.ndarray) -> None:
    """An .npy file written atomically (temporary file, fsync, rename: it exists only complete)."""
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))
