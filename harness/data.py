"""Prepared token data: `attnres data prepare` writes it, the training loop reads it.

    attnres data prepare                              # default corpus, byte tokens -> data/wiki-byte
    attnres data prepare --tokenizer bpe --vocab-size 4096          # -> data/wiki-bpe4096
    attnres data prepare --corpus debian              # fallback corpus (Debian 12 packages, apt)
    attnres data prepare --source-dir shards/ --tokenizer-file tokenizer.json --workers 32 --out data/mine
    attnres data prepare --token-files a.bin b.bin --token-dtype uint16 --out data/mine-tokens
    attnres data info data/wiki-byte

    from harness.data import default_data_dir, prepare, load_tokens
    d = prepare(default_data_dir())                   # returns at once if already prepared (and intact)
    train = load_tokens(d, "train")                   # numpy.memmap of token ids

A prepared directory (written to a temporary sibling, then renamed: complete or absent):
    train.bin, val.bin  token ids, raw little-endian uint16 (vocab <= 65536) or uint32
    meta.json           vocab_size, dtype, tokenizer, eot_id, n_tokens/n_docs/sha256/sampled_sha256 per
                        split (harness.prep.tokenfile defines the sampled checksum), parameters
    sources.json        provenance (package, version, sha256, how fetched; or the user's shards) and licence
    README.txt          the same for people; licenses/ holds the packages' own licence files
    tokenizer.json      the BPE trained here, or a copy of --tokenizer-file

Documents are split into train/validation whole: the round(n * val_fraction) documents of smallest
sha256(seed | text) are held out. Each is followed by the end-of-document token (harness.prep.tokenizer).
Built-in corpora (harness.corpus) are small and prepared in memory; --source-dir streams through
worker processes (harness.prep.stream) in memory bounded by its settings, resumably.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.corpus import (
    CORPORA,
    DEFAULT_CORPUS,
    DataError,
    Log,
    dedup_documents,
    load_corpus,
)
from harness.prep.params import DEFAULT_BPE_SAMPLE_MB, DEFAULT_VAL_FRACTION
from harness.prep.params import command as _command
from harness.prep.params import params as _params
from harness.prep.pretokenized import write_token_splits
from harness.prep.stream import StreamSettings, write_source_splits
from harness.prep.tokenfile import SplitWriter
from harness.prep.tokenizer import (
    EOT_ID,
    EOT_TEXT,
    BpeTokenizer,
    ByteTokenizer,
    HfTokenizer,
    load_tokenizer_file,
    train_bpe,
)
from records.progress import ByteProgress
from records.tokens import (
    DEFAULT_BPE_VOCAB,
    FORMAT,
    SAMPLE_RULE,
    SPLITS,
    complete_meta,
    data_root,
    default_data_dir,
    dtype_for,
    fix_command,
    load_tokens,
    read_meta,
    split_problem,
    unigram_entropy,
)

__all__ = ["DataError", "default_data_dir", "prepare", "read_meta", "load_tokens", "unigram_entropy",
           "get_tokenizer", "split_documents", "train_bpe", "register", "ByteTokenizer", "BpeTokenizer",
           "HfTokenizer", "StreamSettings", "EOT_ID", "EOT_TEXT", "SPLITS"]



def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Tokenizers of prepared directories


def get_tokenizer(data_dir: str | Path) -> ByteTokenizer | HfTokenizer:
    """The tokenizer a prepared directory was made with (.vocab_size, .encode(str), .decode(ids))."""
    d = Path(data_dir)
    meta = read_meta(d)
    kind = meta["tokenizer"]
    if kind == "byte":
        return ByteTokenizer()
    if kind in ("bpe", "hf"):
        path = d / "tokenizer.json"
        if not path.exists():
            raise DataError(f"{path} is missing; {fix_command(d, meta)}")
        return HfTokenizer.from_file(path, kind, meta.get("eot_id", EOT_ID))
    raise DataError(f"{d} holds pre-tokenized data ({kind}); it has no tokenizer to encode or decode text")


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
# Built-in corpora: a few MB, prepared in memory (the output is in ranked order, as it always was)


def _text_tokenizer(tmp: Path, params: dict, train_docs: list[str], cache_dir: Path, log: Log):
    if params["tokenizer"] == "byte":
        return ByteTokenizer()
    if params["tokenizer"] == "hf":
        shutil.copyfile(params["tokenizer_file"], tmp / "tokenizer.json")
        tok = load_tokenizer_file(Path(params["tokenizer_file"]), params.get("eot_token"))
        tok.plain_text_specials()
        return tok
    path = train_bpe(train_docs, params["vocab_size"] or DEFAULT_BPE_VOCAB, cache_dir, log)
    shutil.copyfile(path, tmp / "tokenizer.json")
    return HfTokenizer.from_file(path)


def _write_text_splits(tmp: Path, docs: list[str], params: dict, cache_dir: Path, log: Log) -> tuple[dict, dict]:
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


# --------------------------------------------------------------------------------------------------
# Preparing


def _damage(d: Path, meta: dict, log: Log) -> str | None:
    """None if every split matches its size and full sha256 in meta.json, else what is wrong."""
    item = np.dtype(meta["dtype"]).itemsize
    for info in meta["splits"].values():
        problem = split_problem(d / info["file"], info, item, full=True, log=log)
        if problem:
            return f"{d / info['file']} {problem}"
    return None


# params that change when the code or the user's files change, not when the user asks for other data:
# a prepared set differing only in these is rebuilt without --force
_STALE_KEYS = {"extract_version", "packages", "fingerprint", "stream_version", "tokenizer_sha256"}


def prepare(out_dir: str | Path, corpus: str = DEFAULT_CORPUS, tokenizer: str = "byte",
            vocab_size: int | None = None, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
            source_dir: str | Path | None = None, token_files: list[str | Path] | None = None,
            force: bool = False, token_dtype: str | None = None, cache_dir: str | Path | None = None,
            log: Log = _stderr, *, text_column: str = "text", tokenizer_file: str | Path | None = None,
            eot_token: str | None = None, dedup: bool = True, bpe_sample_mb: float = DEFAULT_BPE_SAMPLE_MB,
            settings: StreamSettings | None = None) -> Path:
    """Prepare a token data directory and return its path; a no-op if it already holds the same set
    and every split still matches its size and sha256 (a damaged one is rebuilt).

    Source: a built-in `corpus` (see harness.corpus.CORPORA), a directory of shards (`source_dir`:
    parquet, jsonl[.gz|.zst] with `text_column`, text files; streamed by harness.prep.stream with
    `settings`), or pre-tokenized files (`token_files`: raw uint16/uint32 with `token_dtype`, or .npy).
    Tokens: bytes, a BPE trained here (`tokenizer="bpe"`), or a Hugging Face `tokenizer_file`.
    `cache_dir` (default <data root>/cache) keeps downloaded packages and trained BPE tokenizers.
    """
    out = Path(out_dir)
    if source_dir is not None and token_files:
        raise DataError("pass --source-dir or --token-files, not both")
    if not 0 < val_fraction <= 0.5:
        raise DataError(f"val_fraction {val_fraction} out of range; fix: use a fraction in (0, 0.5], e.g. 0.05")
    files = [Path(f) for f in token_files] if token_files else None
    params = _params(corpus, tokenizer, vocab_size, val_fraction, seed,
                     Path(source_dir) if source_dir is not None else None, files, token_dtype, text_column,
                     Path(tokenizer_file) if tokenizer_file is not None else None, eot_token, dedup, bpe_sample_mb)
    meta = complete_meta(out)
    if meta is not None and not force:
        changed = sorted(k for k in params.keys() | meta["params"].keys() if params.get(k) != meta["params"].get(k))
        if not changed:
            damage = _damage(out, meta, log)
            if damage is None:
                log(f"{out} is already prepared ({meta['corpus']}, {meta['tokenizer']}; sizes and sha256 "
                    "verified); nothing to do")
                return out
            log(f"{damage}; rebuilding it")
            force = True
        elif set(changed) <= _STALE_KEYS:
            log(f"{out} is out of date ({', '.join(changed)} changed); rebuilding it")
            force = True
    if out.exists() and any(out.iterdir()) and not force:
        what = "a different prepared set" if meta else "files that are not a complete prepared set"
        raise DataError(f"{out} holds {what}; fix: add --force to replace it, or choose another --out")
    cache = Path(cache_dir) if cache_dir is not None else data_root() / "cache"
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(out, log)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        work = _build(tmp, out, params, files, token_dtype, cache, log, settings or StreamSettings())
        _install(tmp, out, params, force, log)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _remove_orphans(out: Path, log: Log) -> None:
    """Temporary output directories left by a killed prepare (their process is gone)."""
    for d in out.parent.glob(f".{out.name}.*-*-*"):
        kind, _, rest = d.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            log(f"  removing {d.name}, left by an interrupted prepare")
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def _build(tmp: Path, out: Path, params: dict, files: list[Path] | None, token_dtype: str | None,
           cache: Path, log: Log, settings: StreamSettings) -> Path | None:
    """Write the prepared set into tmp (meta.json last); returns a streaming work dir to remove."""
    t0 = time.perf_counter()
    log(f"preparing {out} ({params['corpus']}, {params['tokenizer']})")
    n_dup, work = 0, None
    licences: dict[str, str] = {}
    text_check: dict[str, Any] = {}
    if files:
        provenance = [{"token_files": params["token_files"], "licence": "as supplied by the user"}]
        splits, tok = write_token_splits(tmp, files, token_dtype, params["vocab_size"],
                                         lambda keys: split_order(keys, params["val_fraction"], params["seed"]), log)
    elif "source_dir" in params:
        res = write_source_splits(tmp, out, params, settings, cache, log)
        splits, tok, provenance, work = res.splits, res.tokenizer, [res.provenance], res.work_dir
        n_dup = res.provenance["n_duplicate_docs_dropped"]
    else:
        docs, provenance, licences = load_corpus(params["corpus"], cache, log)
        docs, n_dup = dedup_documents([d for d in docs if d.strip()])
        log(f"  {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f} M characters"
            + (f" ({n_dup:,} duplicates dropped)" if n_dup else ""))
        text_check.update(_check_text(params["corpus"], docs, log))
        splits, tok = _write_text_splits(tmp, docs, params, cache, log)
    meta = {"format": FORMAT, "corpus": params["corpus"], "tokenizer": tok["kind"],
            "vocab_size": tok["vocab_size"], "dtype": tok["dtype"].name, "byteorder": "little",
            "eot_id": tok["eot_id"], **({"eot_token": tok["eot_token"]} if "eot_token" in tok else {}),
            "splits": splits, "checksum_sample": SAMPLE_RULE, "n_duplicate_docs_dropped": n_dup,
            "params": params, "command": _command(params, out),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "prepare_s": round(time.perf_counter() - t0, 2)}
    _write_json(tmp / "sources.json", {"corpus": params["corpus"], **text_check, "sources": provenance})
    for package, text in licences.items():
        (tmp / "licenses").mkdir(exist_ok=True)
        (tmp / "licenses" / f"{package}.txt").write_text(text)
    (tmp / "README.txt").write_text(_readme(meta, provenance))
    _write_json(tmp / "meta.json", meta)  # last: its presence marks a complete set
    return work


def _install(tmp: Path, out: Path, params: dict, force: bool, log: Log) -> None:
    """Rename the finished tmp dir into place; a concurrent prepare of the same set may have won."""
    old = None
    if out.exists():
        other = complete_meta(out)
        if other is not None and other["params"] == params and not force:
            log(f"  {out} was prepared concurrently by another process; keeping that one")
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        other = complete_meta(out)
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


def register(subparsers) -> None:  # noqa: ANN001 - argparse's private _SubParsersAction
    """The `attnres data` subcommands (harness/prep/cli.py)."""
    from harness.prep.cli import register as _register

    _register(subparsers)
