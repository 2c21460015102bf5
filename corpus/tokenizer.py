"""Tokenizers of prepared data: bytes, a BPE trained here, or a Hugging Face `tokenizers` file.

Every document is followed by one end-of-document token: id 0 for bytes (byte 0x00, which clean
text never contains) and for the trained BPE ("<|endoftext|>"); for a tokenizer file, its own
end-of-text token (the first of EOT_CANDIDATES it has, or --eot-token). A tokenizer file is used as
is: its vocabulary decides uint16 or uint32 token files; documents are encoded without the file's
post-processor (no BOS/EOS templates: add_special_tokens=False) and with special-token text in a
document encoded as plain text, so a document cannot forge an end-of-document token.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from records.rundir import atomic_write_bytes
from records.tokens import DataError, fix_command, read_meta

Log = Callable[[str], None]
EOT_ID = 0  # end-of-document id of the byte tokenizer and of the BPE trained here
EOT_TEXT = "<|endoftext|>"
EOT_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[EOS]")
MAX_VOCAB = 1 << 24  # unigram counts and a model's embedding are dense arrays of this size at most
UINT32_MAX = (1 << 32) - 1


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


class HfTokenizer:
    """A `tokenizers` Tokenizer: the BPE trained here (kind "bpe") or a user's file (kind "hf")."""

    def __init__(self, tokenizer: Any, kind: str = "bpe", eot_id: int = EOT_ID, vocab_size: int | None = None) -> None:
        self._tok, self.kind, self.eot_id = tokenizer, kind, eot_id
        self.vocab_size = vocab_size or tokenizer.get_vocab_size()

    @classmethod
    def from_file(cls, path: Path, kind: str = "bpe", eot_id: int = EOT_ID) -> HfTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), kind, eot_id)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # encode_batch_fast skips character offsets (unused here); same ids as encode_batch
        fast = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        return [e.ids for e in fast(texts, add_special_tokens=False)]

    def plain_text_specials(self) -> None:
        """Encode special-token text inside documents as ordinary text (a document cannot end itself)."""
        self._tok.encode_special_tokens = True

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


BpeTokenizer = HfTokenizer  # the name before tokenizer files were supported


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


def train_bpe(texts: list[str], vocab_size: int, cache_dir: Path, log: Log) -> Path:
    """A BPE tokenizer file for these texts, trained once and cached under cache_dir/tokenizers.

    The cache key is the text, the vocabulary size and the tokenizers version, so the same training
    text reuses the same tokenizer (a re-prepare with --force, or another output directory).
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
    log(f"  training byte-level BPE, vocab {vocab_size}, on {sum(map(len, texts)) / 1e6:.1f} M characters "
        f"of {len(texts):,} documents")
    tok = _fit_bpe(texts, vocab_size)
    if tok.token_to_id(EOT_TEXT) != EOT_ID:
        raise RuntimeError(f"BPE put {EOT_TEXT} at id {tok.token_to_id(EOT_TEXT)}, expected {EOT_ID}")
    atomic_write_bytes(path, tok.to_str(pretty=True).encode())  # what tok.save(path) writes, atomically
    log(f"  trained BPE ({tok.get_vocab_size()} tokens) in {time.perf_counter() - t0:.1f} s")
    return path


def _max_token_id(path: Path) -> tuple[int, str]:
    """The largest token id in a tokenizer JSON (model vocabulary and added tokens), and its token.

    Read from the JSON itself: the `tokenizers` library cannot even load ids beyond uint32, and its
    error would not say so."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"--tokenizer-file {path}: not a readable tokenizer JSON ({e}); fix: pass the "
                        "tokenizer.json of a Hugging Face tokenizer (tokenizers' Tokenizer.save)") from e
    vocab = (doc.get("model") or {}).get("vocab") if isinstance(doc, dict) else None
    pairs: list[tuple[int, str]] = []
    if isinstance(vocab, dict):
        pairs += [(int(i), str(t)) for t, i in vocab.items() if isinstance(i, int)]
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], ids are positions
        pairs += [(i, str(p[0] if isinstance(p, list) and p else p)) for i, p in enumerate(vocab)]
    pairs += [(int(a["id"]), str(a.get("content"))) for a in doc.get("added_tokens") or []
              if isinstance(a, dict) and isinstance(a.get("id"), int)]
    if not pairs:
        raise DataError(f"--tokenizer-file {path}: no vocabulary found (model.vocab); fix: pass a complete "
                        "tokenizer.json")
    return max(pairs)


def load_tokenizer_file(path: Path, eot_token: str | None = None) -> HfTokenizer:
    """A user's tokenizer file, checked: ids fit uint32 (and a dense vocabulary), an end-of-text token;
    special-token text inside documents is encoded as plain text (plain_text_specials).

    Loaded once per process while the file is unchanged (the same object is returned again): the
    checks of the arguments, the preparation and the worker processes forked from it share one
    parse, which takes 0.1-0.2 s for a 32k vocabulary (twice that for the checks' JSON read)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--tokenizer-file {path} does not exist; fix: pass the path of a tokenizer.json")
    st = path.stat()
    return _load_checked(str(path), st.st_size, st.st_mtime_ns, eot_token)


@functools.lru_cache(maxsize=8)
def _load_checked(name: str, _size: int, _mtime_ns: int, eot_token: str | None) -> HfTokenizer:
    path = Path(name)
    top, token = _max_token_id(path)
    if top > UINT32_MAX:
        raise DataError(f"--tokenizer-file {path}: token id {top:,} ({token!r}) exceeds uint32, the widest "
                        f"token files hold (ids up to {UINT32_MAX:,}); fix: use a tokenizer whose vocabulary "
                        "fits uint32")
    if top >= MAX_VOCAB:
        raise DataError(f"--tokenizer-file {path}: token id {top:,} ({token!r}) means a vocabulary of "
                        f"{top + 1:,}, larger than any model here embeds (at most {MAX_VOCAB:,}); fix: use a "
                        "tokenizer with a smaller vocabulary")
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the library raises bare Exception for bad files
        raise DataError(f"--tokenizer-file {path}: the tokenizers library cannot load it ({e}); fix: pass "
                        "a tokenizer.json saved by tokenizers") from e
    names = [eot_token] if eot_token else list(EOT_CANDIDATES)
    eot = next(((n, tok.token_to_id(n)) for n in names if tok.token_to_id(n) is not None), None)
    if eot is None:
        what = f"has no token {eot_token!r}" if eot_token else f"has none of the usual end-of-text tokens {names}"
        raise DataError(f"--tokenizer-file {path} {what}; fix: name its end-of-document token with "
                        "--eot-token TOKEN")
    vocab_size = max(tok.get_vocab_size(with_added_tokens=True), top + 1)
    hf = HfTokenizer(tok, "hf", eot[1], vocab_size)
    hf.eot_token = eot[0]
    hf.plain_text_specials()
    return hf


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
