"""The in-memory path of `attnres data prepare`: the document-level split rule, and the built-in
corpora (a few MB) tokenized and written in memory. Their output is in ranked order, as it always
was; --source-dir streams instead (corpus/stream.py), with the same held-out documents.

Documents are split into train/validation whole: the round(n * val_fraction) documents (at least
one, at most n - 1) of smallest sha256(b"<seed>|" + text) are held out. Each document is followed by
the end-of-document token (corpus/tokenizer.py).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from corpus.corpora import CORPORA
from corpus.params import DEFAULT_VAL_FRACTION
from corpus.tokenfile import SplitWriter
from corpus.tokenizer import ByteTokenizer, HfTokenizer, load_tokenizer_file, train_bpe
from records.progress import ByteProgress, Log
from records.tokens import DEFAULT_BPE_VOCAB, SPLITS, DataError, dtype_for

# --------------------------------------------------------------------------------------------------
# Document-level split


def split_order(keys: list[bytes], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the (train, val) items, each in ranked order (a seeded shuffle).

    Items are ranked by sha256(seed, key) and the first round(n * val_fraction) (at least one) go to
    val, so the split does not depend on the order the items came in.
    """
    n = len(keys)
    if n < 2:
        raise DataError(f"need at least 2 documents to split into train and validation, got {n}; "
                        "fix: add more text")
    rank = sorted(range(n), key=lambda i: hashlib.sha256(b"%d|" % seed + keys[i]).digest())
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return rank[n_val:], rank[:n_val]


def split_documents(docs: list[str], val_fraction: float = DEFAULT_VAL_FRACTION,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, val) documents: a deterministic, order-independent split of whole documents."""
    train, val = split_order([d.encode("utf-8") for d in docs], val_fraction, seed)
    return [docs[i] for i in train], [docs[i] for i in val]


# --------------------------------------------------------------------------------------------------
# Built-in corpora, in memory


def _text_tokenizer(tmp: Path, params: dict, train_docs: list[str], cache_dir: Path, log: Log):
    if params["tokenizer"] == "byte":
        return ByteTokenizer()
    if params["tokenizer"] == "hf":
        shutil.copyfile(params["tokenizer_file"], tmp / "tokenizer.json")
        return load_tokenizer_file(Path(params["tokenizer_file"]), params.get("eot_token"))
    path = train_bpe(train_docs, params["vocab_size"] or DEFAULT_BPE_VOCAB, cache_dir, log)
    shutil.copyfile(path, tmp / "tokenizer.json")
    return HfTokenizer.from_file(path)


def write_text_splits(tmp: Path, docs: list[str], params: dict, cache_dir: Path, log: Log) -> tuple[dict, dict]:
    train_docs, val_docs = split_documents(docs, params["val_fraction"], params["seed"])
    tok = _text_tokenizer(tmp, params, train_docs, cache_dir, log)
    dtype = dtype_for(tok.vocab_size)
    splits = {}
    for split, split_docs in zip(SPLITS, (train_docs, val_docs)):
        t0 = time.perf_counter()
        w = SplitWriter(tmp / f"{split}.bin", dtype, tok.vocab_size)
        if isinstance(tok, ByteTokenizer):
            blob = b"".join(d.encode("utf-8") + b"\x00" for d in split_docs)
            w.write(np.frombuffer(blob, dtype=np.uint8), len(split_docs))
        else:
            prog, done = ByteProgress(f"tokenizing {split}", sum(map(len, split_docs)), log), 0
            for i in range(0, len(split_docs), 1024):
                batch = tok.encode_batch(split_docs[i:i + 1024])
                ids = np.fromiter((t for ids in batch for t in [*ids, tok.eot_id]), dtype=np.int64)
                w.write(ids, len(batch))
                done += sum(map(len, split_docs[i:i + 1024]))
                prog.update(done, f"{w.n_docs:,} documents, {w.n_tokens:,} tokens")
        splits[split] = w.close()
        log(f"  {split}: {w.n_docs:,} documents -> {w.n_tokens:,} tokens ({time.perf_counter() - t0:.1f} s)")
    info = {"kind": params["tokenizer"], "vocab_size": tok.vocab_size, "dtype": dtype, "eot_id": tok.eot_id}
    if params["tokenizer"] == "hf":
        info["eot_token"] = tok.eot_token
    return splits, info


def check_text(corpus: str, docs: list[str], log: Log) -> dict[str, Any]:
    """sha256 of the final documents, compared with the reference of a built-in corpus (drift check)."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.encode("utf-8") + b"\x00")
    check: dict[str, Any] = {"text_sha256": h.hexdigest()}
    if corpus in CORPORA:
        ref = CORPORA[corpus].text_sha256
        check.update(reference_text_sha256=ref, matches_reference=check["text_sha256"] == ref)
        if not check["matches_reference"]:
            log(f"  WARNING: the extracted {corpus} text differs from the reference extraction (another "
                "package version or extraction code); results will not be comparable with reference runs")
    return check
