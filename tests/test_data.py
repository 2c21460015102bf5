"""Data preparation: tokenizers, the document-level split, prepared directories and their errors.

Fast tests use text written here; the one test that downloads the real corpus is marked slow.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from corpus import cli, corpora, inmemory, params, pretokenized, shards, tokenizer
from corpus import prepare as preparation
from records import tokens
from records.progress import ByteProgress, duration
from records.tokens import DataError

PARAGRAPHS = [
    "The river rose slowly through the night, and by morning the lower fields were under water.",
    "Farmers had moved their animals to the hill the evening before, warned by the sound of the rain.",
    "A scaling law relates the loss of a model to the compute spent on training it.",
    "Residual connections add the input of a layer to its output, so that gradients flow easily.",
    "She walked to the station in silence, thinking about the letter she had not yet answered.",
    "The committee met on Tuesday and agreed, after a long discussion, to postpone the decision.",
    "Bread is made from flour, water, salt and yeast, and it has been baked for thousands of years.",
    "The library closes at six o'clock on weekdays, but students may stay later during examinations.",
    "Mountains in the north are covered with snow for most of the year, even in the warmest months.",
    "He had never seen the sea before, and the noise of the waves surprised him more than their size.",
    "Naïve estimates of the café's costs — rent, wages, coffee — proved far too optimistic.",
    "Every evening the lamps along the harbour were lit one by one by an old man with a long pole.",
]


def _docs(n: int) -> list[str]:
    """n distinct short documents of real sentences."""
    k = len(PARAGRAPHS)
    return [f"Note {i}.\n" + "\n".join(PARAGRAPHS[(i + j * 5) % k] for j in range(3)) for i in range(n)]


def _text_dir(root: Path, n: int = 40) -> Path:
    root.mkdir(parents=True)
    for i, doc in enumerate(_docs(n)):
        sub = root / ("nested" if i % 7 == 0 else "")
        sub.mkdir(exist_ok=True)
        (sub / f"doc{i:03d}.txt").write_text(doc)
    (root / "copy.txt").write_text(_docs(1)[0])  # duplicate of doc000: dropped
    (root / "image.png").write_bytes(b"\x89PNG not text")  # ignored by suffix
    return root


def _quiet(msg: str) -> None:
    pass


def _prepare(out: Path, **kw) -> Path:
    kw.setdefault("cache_dir", out.parent / "cache")
    return preparation.prepare(out, log=_quiet, **kw)


def _split_docs(tokens: np.ndarray, tok) -> list[str]:
    """Documents back from a split: text between end-of-document tokens."""
    ids = np.asarray(tokens).tolist()
    docs, cur = [], []
    for t in ids:
        if t == tokenizer.EOT_ID:
            docs.append(tok.decode(cur))
            cur = []
        else:
            cur.append(t)
    assert not cur, "every document ends with the end-of-document token"
    return docs


# --------------------------------------------------------------------------------------------------
# Tokenizers


def test_byte_tokenizer_round_trip():
    tok = tokenizer.ByteTokenizer()
    text = "Naïve café — 3,600 seconds; 日本語.\n\tEnd"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and all(0 <= i < 256 for i in ids)
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_bpe_round_trips_and_is_cached(tmp_path, monkeypatch):
    texts = _docs(60)
    path = tokenizer.train_bpe(texts, 320, tmp_path, log=_quiet)
    tok = tokenizer.BpeTokenizer.from_file(path)
    assert tok.vocab_size == 320
    sample = "The committee walked to the harbour; naïve costs — 日本 — rose.\n\nNew paragraph."
    ids = tok.encode(sample)
    assert max(ids) < tok.vocab_size and len(ids) < len(sample.encode())  # merges were learnt
    assert tok.decode(ids) == sample
    assert tok.encode(tokenizer.EOT_TEXT) == [tokenizer.EOT_ID]

    def no_training(*args):
        raise AssertionError("the cached tokenizer should have been reused")

    monkeypatch.setattr(tokenizer, "_fit_bpe", no_training)
    assert tokenizer.train_bpe(texts, 320, tmp_path, log=_quiet) == path
    with pytest.raises(AssertionError):  # other text: a new tokenizer is trained
        tokenizer.train_bpe(texts[:30], 320, tmp_path, log=_quiet)


# --------------------------------------------------------------------------------------------------
# Split


def test_document_split_is_deterministic_disjoint_and_order_free():
    docs = _docs(200)
    train, val = inmemory.split_documents(docs, 0.1, seed=0)
    assert len(val) == 20 and len(train) == 180
    assert not set(train) & set(val) and set(train) | set(val) == set(docs)
    assert inmemory.split_documents(docs, 0.1, seed=0) == (train, val)
    shuffled = list(reversed(docs))
    t2, v2 = inmemory.split_documents(shuffled, 0.1, seed=0)
    assert set(v2) == set(val) and set(t2) == set(train)
    assert set(inmemory.split_documents(docs, 0.1, seed=1)[1]) != set(val)
    with pytest.raises(DataError, match="at least 2 documents"):
        inmemory.split_documents(docs[:1], 0.1)


# --------------------------------------------------------------------------------------------------
# Prepared directories


def test_prepare_text_dir_byte(tmp_path):
    src = _text_dir(tmp_path / "texts")
    out = _prepare(tmp_path / "data" / "mine-byte", source_dir=src, val_fraction=0.2)
    meta = tokens.read_meta(out)
    assert meta["tokenizer"] == "byte" and meta["vocab_size"] == 256 and meta["dtype"] == "uint16"
    assert meta["n_duplicate_docs_dropped"] == 1
    assert meta["splits"]["train"]["n_docs"] == 32 and meta["splits"]["val"]["n_docs"] == 8
    tok = tokenizer.get_tokenizer(out)
    got = {s: _split_docs(tokens.load_tokens(out, s), tok) for s in tokens.SPLITS}
    assert sorted(got["train"] + got["val"]) == sorted(_docs(40))
    assert not set(got["train"]) & set(got["val"])
    ids = tokens.load_tokens(out, "train")
    assert isinstance(ids, np.memmap) and len(ids) == meta["splits"]["train"]["n_tokens"]
    p = np.bincount(ids, minlength=256) / len(ids)
    expected = -sum(x * math.log(x) for x in p if x > 0)
    assert tokens.unigram_entropy(out) == pytest.approx(expected)
    assert 1.0 < tokens.unigram_entropy(out, "val") < math.log(256)
    sources = json.loads((out / "sources.json").read_text())
    assert sources["sources"][0]["source_dir"] == str(src.resolve()) and len(sources["sources"][0]["docs_sha256"]) == 64
    assert (out / "README.txt").exists()


def test_prepare_text_dir_bpe(tmp_path):
    src = _text_dir(tmp_path / "texts", n=60)
    out = _prepare(tmp_path / "data" / "mine-bpe", source_dir=src, tokenizer="bpe", vocab_size=512)
    meta = tokens.read_meta(out)
    assert meta["tokenizer"] == "bpe" and (out / "tokenizer.json").exists()
    tok = tokenizer.get_tokenizer(out)
    assert tok.vocab_size == meta["vocab_size"] <= 512
    got = _split_docs(tokens.load_tokens(out, "train"), tok) + _split_docs(tokens.load_tokens(out, "val"), tok)
    assert sorted(got) == sorted(_docs(60))


@pytest.mark.parametrize("dtype,top", [("uint16", 1000), ("uint32", 100_000)])
def test_prepare_pretokenized(tmp_path, monkeypatch, dtype, top):
    monkeypatch.setattr(pretokenized, "TOKEN_CHUNK", 100)  # small files still make several split pieces
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, top, size=n).astype(dtype) for n in (950, 430)]
    arrays[0][0] = top - 1
    files = []
    for i, a in enumerate(arrays):
        files.append(tmp_path / f"shard{i}.bin")
        a.astype(np.dtype(dtype).newbyteorder("<")).tofile(files[-1])
    out = _prepare(tmp_path / "tok", token_files=files, token_dtype=dtype, val_fraction=0.2)
    meta = tokens.read_meta(out)
    assert meta["vocab_size"] == top and meta["dtype"] == dtype and meta["tokenizer"] == "pretokenized"
    assert meta["splits"]["train"]["n_docs"] + meta["splits"]["val"]["n_docs"] == 10 + 5
    both = np.concatenate([tokens.load_tokens(out, s) for s in tokens.SPLITS])
    assert sorted(both.tolist()) == sorted(np.concatenate(arrays).tolist())
    with pytest.raises(DataError, match="no tokenizer"):
        tokenizer.get_tokenizer(out)
    # .npy carries its own dtype
    np.save(tmp_path / "shard.npy", arrays[0])
    out2 = _prepare(tmp_path / "npy", token_files=[tmp_path / "shard.npy"], vocab_size=top + 10)
    assert tokens.read_meta(out2)["vocab_size"] == top + 10
    with pytest.raises(DataError, match="--token-dtype"):
        _prepare(tmp_path / "raw", token_files=files)
    with pytest.raises(DataError, match="--vocab-size"):
        _prepare(tmp_path / "small", token_files=files, token_dtype=dtype, vocab_size=10)


def test_corrupt_truncated_and_missing_data_name_the_fix(tmp_path):
    out = _prepare(tmp_path / "d", source_dir=_text_dir(tmp_path / "texts"))
    train = out / "train.bin"
    blob = train.read_bytes()

    train.write_bytes(blob[:-2])
    with pytest.raises(DataError, match=r"truncated.*attnres data prepare --source-dir .* --force"):
        tokens.load_tokens(out, "train")
    assert tokens.read_meta(out)  # meta itself is fine

    train.write_bytes(bytes([blob[0] ^ 1]) + blob[1:])
    with pytest.raises(DataError, match=r"corrupt.*sha256.*attnres data prepare"):
        tokens.load_tokens(out, "train")
    tokens.load_tokens(out, "train", verify=False)  # size still matches: readable when asked

    train.unlink()
    with pytest.raises(DataError, match=r"train.bin is missing.*attnres data prepare"):
        tokens.load_tokens(out, "train")

    (out / "meta.json").unlink()
    with pytest.raises(DataError, match=rf"{re.escape(str(out))} has no meta.json.*prepare --out {re.escape(str(out))}"):
        tokens.load_tokens(out, "val")
    (out / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        tokens.read_meta(out)
    with pytest.raises(DataError, match=r"does not exist; fix: run `attnres data prepare"):
        tokens.unigram_entropy(tmp_path / "nowhere")


def test_prepare_is_idempotent_and_atomic(tmp_path, monkeypatch):
    src = _text_dir(tmp_path / "texts")
    out = _prepare(tmp_path / "data" / "d", source_dir=src)
    stamp = (out / "train.bin").stat().st_mtime_ns

    def no_rebuild(*args):
        raise AssertionError("an identical prepared set must not be rebuilt")

    with monkeypatch.context() as m:
        m.setattr(preparation, "_build", no_rebuild)
        assert _prepare(out, source_dir=src) == out
    assert (out / "train.bin").stat().st_mtime_ns == stamp

    with pytest.raises(DataError, match="--force"):  # different parameters, no --force
        _prepare(out, source_dir=src, seed=1)

    def interrupted(tmp, *args):
        (tmp / "train.bin").write_bytes(b"partial")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(preparation, "_build", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _prepare(out, source_dir=src, seed=1, force=True)
    assert tokens.read_meta(out)["params"]["seed"] == 0  # the old set is untouched
    assert [p.name for p in out.parent.iterdir()] == ["d"]  # no temporary left behind

    _prepare(out, source_dir=src, seed=1, force=True)
    assert tokens.read_meta(out)["params"]["seed"] == 1
    # made by older extraction code, or from since-edited files: rebuilt without --force
    monkeypatch.setattr(params, "EXTRACT_VERSION", params.EXTRACT_VERSION + 1)
    _prepare(out, source_dir=src, seed=1)
    assert tokens.read_meta(out)["params"]["extract_version"] == params.EXTRACT_VERSION
    (src / "doc001.txt").write_text("An edited document, quite different from what it was before.")
    _prepare(out, source_dir=src, seed=1)
    assert tokens.read_meta(out)["params"]["fingerprint"] == params.fingerprint(shards.discover(src)[0])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    with pytest.raises(DataError, match="not a complete prepared set"):
        _prepare(tmp_path / "junk", source_dir=src)


def test_bad_arguments_are_data_errors(tmp_path):
    src = _text_dir(tmp_path / "texts")
    with pytest.raises(DataError, match="vocab 256"):
        _prepare(tmp_path / "a", source_dir=src, vocab_size=1000)
    with pytest.raises(DataError, match="val_fraction"):
        _prepare(tmp_path / "a", source_dir=src, val_fraction=0.9)
    with pytest.raises(DataError, match="unknown corpus"):
        _prepare(tmp_path / "a", corpus="nope")
    with pytest.raises(DataError, match="not a directory"):
        _prepare(tmp_path / "a", source_dir=tmp_path / "missing")
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "x.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        _prepare(tmp_path / "a", source_dir=tmp_path / "latin1")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNRES_DATA_DIR", str(tmp_path))
    assert tokens.default_data_dir() == tmp_path / f"{corpora.DEFAULT_CORPUS}-byte"
    assert tokens.default_data_dir("debian", "bpe", 8192) == tmp_path / "debian-bpe8192"
    monkeypatch.delenv("ATTNRES_DATA_DIR")
    monkeypatch.chdir(tmp_path)  # data/ of the working directory (records/paths.py)
    assert tokens.default_data_dir().resolve().parent == tmp_path / "data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnres")
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_prepare_and_info(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATTNRES_DATA_DIR", str(tmp_path / "root"))
    src = _text_dir(tmp_path / "texts")
    args = _parser().parse_args(["data", "prepare", "--source-dir", str(src)])
    assert args.func(args) == 0
    out = tmp_path / "root" / "user-texts-byte"
    assert capsys.readouterr().out.strip() == str(out)
    args = _parser().parse_args(["data", "info", str(out)])
    assert args.func(args) == 0
    assert "checksum ok" in capsys.readouterr().out
    args = _parser().parse_args(["data", "info", str(tmp_path / "none")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "attnres data prepare" in err and "Traceback" not in err


def test_byte_progress_lines_have_rate_and_eta():
    """records/progress.py's ByteProgress (data preparation): % of input, rate over the stage, ETA from
    the input rate, at most every every_s, and a summary at the end."""
    now, lines = [0.0], []
    p = ByteProgress("tokenizing (2 workers)", 4e6, lines.append, every_s=10.0, skipped=1e6, clock=lambda: now[0])
    now[0] = 5.0
    p.update(2e6, "10 documents", text=2.5e6)  # before every_s: quiet
    now[0] = 10.0
    p.update(3e6, "20 documents", text=5e6)
    now[0] = 12.0
    p.update(3.5e6, "25 documents")  # within every_s of the last line: quiet
    now[0] = 20.0
    p.finish(4e6, "40 documents", text=1e7)
    assert lines == ["  tokenizing (2 workers): 75% of 4.0 MB, 20 documents, 0.5 MB/s of text, ETA 5 s",
                     "  tokenizing (2 workers): 4.0 MB, 10.0 MB of text, 40 documents in 20.0 s (0.5 MB/s of text)"]
    assert duration(42) == "42 s" and duration(125) == "2 min 05 s" and duration(3900) == "1 h 05 min"


def test_a_tokenizer_file_is_parsed_once_per_process(tmp_path, monkeypatch):
    """A preparation checks its arguments, prepares and forks workers from one parse of the file; an
    edited file is parsed again."""
    path = tokenizer.train_bpe(_docs(40), 300, tmp_path, log=_quiet)
    user = tmp_path / "user.json"
    user.write_bytes(path.read_bytes())
    first = tokenizer.load_tokenizer_file(user)
    assert tokenizer.load_tokenizer_file(user) is first and first.eot_token == tokenizer.EOT_TEXT
    assert first.encode(tokenizer.EOT_TEXT) != [first.eot_id]  # document text never forges the end token
    user.write_text(user.read_text().replace('"<|endoftext|>"', '"<|end_of_text|>"'))
    again = tokenizer.load_tokenizer_file(user)
    assert again is not first and again.eot_token == "<|end_of_text|>"


def test_rerun_verifies_the_prepared_files_before_saying_done(tmp_path):
    """Issue 12: a flipped byte in a prepared token file is found (sha256) by a re-run, which rebuilds."""
    src = _text_dir(tmp_path / "texts")
    out = _prepare(tmp_path / "d", source_dir=src)
    train = out / "train.bin"
    good = train.read_bytes()
    train.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    lines: list[str] = []
    preparation.prepare(out, source_dir=src, cache_dir=tmp_path / "cache", log=lines.append)
    assert not any("nothing to do" in m for m in lines), lines
    assert any("train.bin is corrupt: its sha256 differs" in m and "rebuilding" in m for m in lines), lines
    assert train.read_bytes() == good
    lines.clear()
    preparation.prepare(out, source_dir=src, cache_dir=tmp_path / "cache", log=lines.append)
    assert any("sha256 verified); nothing to do" in m for m in lines), lines
