"""`attnres data prepare` (the library call behind it): a prepared token data directory, written to a
temporary sibling and renamed into place, so it is complete or absent. The format and its reader
are records/tokens.py.

    attnres data prepare                              # default corpus, byte tokens -> data/wiki-byte
    attnres data prepare --tokenizer bpe --vocab-size 4096          # -> data/wiki-bpe4096
    attnres data prepare --corpus debian              # fallback corpus (Debian 12 packages, apt)
    attnres data prepare --source-dir shards/ --tokenizer-file tokenizer.json --workers 32 --out data/mine
    attnres data prepare --token-files a.bin b.bin --token-dtype uint16 --out data/mine-tokens
    attnres data info data/wiki-byte

    from corpus.prepare import prepare
    from records.tokens import default_data_dir, load_tokens
    d = prepare(default_data_dir())                   # returns at once if already prepared (and intact)
    train = load_tokens(d, "train")                   # numpy.memmap of token ids

A prepared directory:
    train.bin, val.bin  token ids, raw little-endian uint16 (vocab <= 65536) or uint32
    meta.json           vocab_size, dtype, tokenizer, eot_id, n_tokens/n_docs/sha256/sampled_sha256 per
                        split (records/tokens.py defines the sampled checksum), parameters
    sources.json        provenance (package, version, sha256, how fetched; or the user's shards) and licence
    README.txt          the same for people; licenses/ holds the packages' own licence files
    tokenizer.json      the BPE trained here, or a copy of --tokenizer-file

Sources: built-in corpora (corpus/corpora.py) are small and prepared in memory (corpus/inmemory.py,
which also holds the split rule); --source-dir streams through worker processes (corpus/stream.py)
in memory bounded by its settings, resumably; --token-files: corpus/pretokenized.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from corpus.corpora import DEFAULT_CORPUS, load_corpus
from corpus.inmemory import check_text, split_order, write_text_splits
from corpus.params import DEFAULT_BPE_SAMPLE_MB, DEFAULT_VAL_FRACTION
from corpus.params import command as _command
from corpus.params import params as _params
from corpus.pretokenized import write_token_splits
from corpus.stream import StreamSettings, write_source_splits
from corpus.text import dedup_documents
from records.progress import Log, stderr
from records.tokens import FORMAT, SAMPLE_RULE, DataError, complete_meta, data_root, read_meta, split_problem

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
            log: Log = stderr, *, text_column: str = "text", tokenizer_file: str | Path | None = None,
            eot_token: str | None = None, dedup: bool = True, bpe_sample_mb: float = DEFAULT_BPE_SAMPLE_MB,
            settings: StreamSettings | None = None) -> Path:
    """Prepare a token data directory and return its path; a no-op if it already holds the same set
    and every split still matches its size and sha256 (a damaged one is rebuilt).

    Source: a built-in `corpus` (see corpus.corpora.CORPORA), a directory of shards (`source_dir`:
    parquet, jsonl[.gz|.zst] with `text_column`, text files; streamed by corpus.stream with
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
        text_check.update(check_text(params["corpus"], docs, log))
        splits, tok = write_text_splits(tmp, docs, params, cache, log)
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
