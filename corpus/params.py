"""What a prepared set is: the parameters that decide its content (equal params: `prepare` is a
no-op), and the command that recreates it."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any

from corpus.corpora import CORPORA, EXTRACT_VERSION
from corpus.shards import discover
from corpus.tokenizer import MAX_VOCAB, load_tokenizer_file
from records.tokens import DEFAULT_BPE_VOCAB, FORMAT, DataError, sha256_file

DEFAULT_VAL_FRACTION = 0.05  # 5% of documents: ~250k byte tokens of the default corpus for evaluation
DEFAULT_BPE_SAMPLE_MB = 256.0  # --source-dir with --tokenizer bpe: training text for the BPE
STREAM_VERSION = 1  # bump when the --source-dir pipeline's output changes: older sets are rebuilt


def fingerprint(paths: list[Path]) -> str:
    """Cheap identity of user files (name, size, mtime): a changed file means a different prepared set."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _tokenizer_params(tokenizer: str, vocab_size: int | None, tokenizer_file: Path | None,
                      eot_token: str | None) -> dict:
    if tokenizer_file is not None:
        if tokenizer == "bpe":
            raise DataError("pass --tokenizer bpe or --tokenizer-file, not both")
        if vocab_size is not None:
            raise DataError("--vocab-size comes from the --tokenizer-file; fix: drop --vocab-size")
        path = Path(tokenizer_file).resolve()
        tok = load_tokenizer_file(path, eot_token)
        return {"tokenizer": "hf", "vocab_size": tok.vocab_size, "tokenizer_file": str(path),
                "tokenizer_sha256": sha256_file(path), "eot_token": eot_token}
    if eot_token is not None:
        raise DataError("--eot-token names a token of a --tokenizer-file; fix: drop it or pass the file")
    if tokenizer not in ("byte", "bpe"):
        raise DataError(f"unknown tokenizer {tokenizer!r}; fix: use 'byte' or 'bpe', or --tokenizer-file")
    if tokenizer == "byte" and vocab_size not in (None, 256):
        raise DataError(f"the byte tokenizer has vocab 256, not {vocab_size}; fix: drop --vocab-size or "
                        "use --tokenizer bpe")
    if tokenizer == "bpe":
        vocab_size = vocab_size or DEFAULT_BPE_VOCAB
        if not 512 <= vocab_size <= 1 << 20:
            raise DataError(f"BPE vocab size {vocab_size} out of range; fix: use 512..1048576 (e.g. 4096)")
    return {"tokenizer": tokenizer, "vocab_size": vocab_size if tokenizer == "bpe" else 256}


def params(corpus: str, tokenizer: str, vocab_size: int | None, val_fraction: float, seed: int,
            source_dir: Path | None, token_files: list[Path] | None, token_dtype: str | None,
            text_column: str = "text", tokenizer_file: Path | None = None, eot_token: str | None = None,
            dedup: bool = True, bpe_sample_mb: float = DEFAULT_BPE_SAMPLE_MB) -> dict:
    """Everything that determines a prepared set's content; equal params -> prepare is a no-op."""
    p: dict[str, Any] = {"format": FORMAT, "val_fraction": val_fraction, "seed": seed}
    if token_files:
        if tokenizer_file is not None:
            raise DataError("--token-files are already tokenized; fix: drop --tokenizer-file")
        files = [f.resolve() for f in token_files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"token file(s) not found: {', '.join(missing)}")
        if vocab_size is not None and not 2 <= vocab_size <= MAX_VOCAB:
            raise DataError(f"--vocab-size {vocab_size} out of range; fix: use 2..{MAX_VOCAB}")
        return {**p, "corpus": f"user-{files[0].stem}", "tokenizer": "pretokenized", "vocab_size": vocab_size,
                "token_files": [str(f) for f in files], "token_dtype": token_dtype,
                "fingerprint": fingerprint(files)}
    p.update(**_tokenizer_params(tokenizer, vocab_size, tokenizer_file, eot_token), extract_version=EXTRACT_VERSION)
    if source_dir is not None:
        root = Path(source_dir).resolve()
        if not text_column:
            raise DataError("--text-column is empty; fix: name the text column, e.g. --text-column text")
        if bpe_sample_mb <= 0:
            raise DataError(f"--bpe-sample-mb {bpe_sample_mb}: fix: use a positive size, e.g. 256")
        files, _ = discover(root)
        extra = {"bpe_sample_mb": bpe_sample_mb} if p["tokenizer"] == "bpe" else {}
        return {**p, "corpus": f"user-{root.name}", "source_dir": str(root), "fingerprint": fingerprint(files),
                "stream_version": STREAM_VERSION, "text_column": text_column, "dedup": bool(dedup), **extra}
    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; fix: use one of {sorted(CORPORA)}, or --source-dir DIR")
    return {**p, "corpus": corpus,
            "packages": [f"{s.package}=={s.version} sha256:{s.sha256}" for s in CORPORA[corpus].sources]}


def command(params: dict, out_dir: Path) -> str:
    """The CLI call that (re)creates a prepared set; error messages quote it."""
    cmd = ["attnres", "data", "prepare"]
    if "token_files" in params:
        cmd += ["--token-files", *params["token_files"]]
        cmd += ["--token-dtype", params["token_dtype"]] if params.get("token_dtype") else []
        cmd += ["--vocab-size", str(params["vocab_size"])] if params.get("vocab_size") else []
    else:
        cmd += ["--source-dir", params["source_dir"]] if "source_dir" in params else ["--corpus", params["corpus"]]
        if params["tokenizer"] == "hf":
            cmd += ["--tokenizer-file", params["tokenizer_file"]]
            cmd += ["--eot-token", params["eot_token"]] if params.get("eot_token") else []
        else:
            cmd += ["--tokenizer", params["tokenizer"]]
        cmd += ["--vocab-size", str(params["vocab_size"])] if params["tokenizer"] == "bpe" else []
        cmd += ["--text-column", params["text_column"]] if params.get("text_column", "text") != "text" else []
        cmd += ["--no-dedup"] if params.get("dedup") is False else []
        if params.get("bpe_sample_mb", DEFAULT_BPE_SAMPLE_MB) != DEFAULT_BPE_SAMPLE_MB:
            cmd += ["--bpe-sample-mb", f"{params['bpe_sample_mb']:g}"]
    if params["val_fraction"] != DEFAULT_VAL_FRACTION:
        cmd += ["--val-fraction", str(params["val_fraction"])]
    cmd += ["--seed", str(params["seed"])] if params["seed"] else []
    return shlex.join([*cmd, "--out", str(out_dir)])
