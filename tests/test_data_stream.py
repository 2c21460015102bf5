"""Streaming `attnres data prepare --source-dir` on real files: parquet, jsonl.zst, jsonl.gz, jsonl and
text shards written here from the default corpus, a tokenizer trained here with `tokenizers`.

References are independent of the pipeline: the documents' held-out set comes from the in-memory
rule (corpus.inmemory.split_documents), token ids from the tokenizers library itself.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from corpus import docset, inmemory, shards, tokenizer
from corpus import prepare as preparation
from corpus.corpora import load_corpus
from corpus.stream import StreamSettings
from corpus.text import dedup_documents
from records import tokens
from records.tokens import DataError

N_DOCS = 2400  # of the default corpus (~1.2 MB of text): enough for many work units, fast to tokenize


@pytest.fixture(scope="module")
def wiki_docs() -> list[str]:
    docs, _, _ = load_corpus("wiki", tokens.data_root() / "cache", log=lambda m: None)
    docs = docs[:N_DOCS]
    assert all(shards.clean(d) == d and d for d in docs)  # already clean: the reference needs no cleaning
    return docs


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory, wiki_docs) -> Path:
    """A byte-level BPE trained here with the tokenizers library; its end-of-text token is id 1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<pad>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(wiki_docs[:800], trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def _write_shards(root: Path, docs: list[str]) -> Path:
    """The documents, in order, across every shard format (file names sort in document order)."""
    root.mkdir(parents=True)
    q = len(docs) // 6
    parts = [docs[i * q:(i + 1) * q] for i in range(5)] + [docs[5 * q:]]
    pq.write_table(pa.table({"id": range(q), "text": parts[0]}), root / "a0.parquet", row_group_size=97)
    with_null = parts[1][:10] + [None] + parts[1][10:]  # a null row is skipped
    pq.write_table(pa.table({"text": with_null}), root / "a1.parquet", row_group_size=200)
    lines = [json.dumps({"text": d, "url": f"u{i}"}).encode() + b"\n" for i, d in enumerate(parts[2])]
    half = len(lines) // 2  # two zstd frames in one file
    (root / "b0.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines[:half]))
                                        + zstandard.ZstdCompressor().compress(b"".join(lines[half:])))
    (root / "b1.jsonl.gz").write_bytes(gzip.compress(b"".join(json.dumps({"text": d}).encode() + b"\n" for d in parts[3])))
    (root / "b2.jsonl").write_text("".join(json.dumps({"text": d}) + "\n\n" for d in parts[4]))  # blank lines: skipped
    (root / "c").mkdir()
    for i, d in enumerate(parts[5]):
        (root / "c" / f"{i:05d}.txt").write_text(d)
    (root / "notes.pdf").write_bytes(b"%PDF ignored")
    return root


def _reference(docs: list[str], tokenizer_file: Path, val_fraction: float = 0.05) -> dict[str, np.ndarray]:
    """Expected split contents: held-out documents by the in-memory rule, each split in input order,
    token ids from the tokenizers library (no post-processor), each document then the EOT id 1."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    kept, _ = dedup_documents(docs)
    _, val = inmemory.split_documents(kept, val_fraction, 0)
    val_set = set(val)
    out = {}
    for name, sel in (("train", [d for d in kept if d not in val_set]), ("val", [d for d in kept if d in val_set])):
        ids = [t for e in tok.encode_batch(sel, add_special_tokens=False) for t in [*e.ids, 1]]
        out[name] = np.asarray(ids, dtype=np.uint16)
    return out


def _naive_sampled_sha256(path: Path, blocks: int, block_bytes: int) -> str:
    blob = path.read_bytes()
    b = min(block_bytes, len(blob))
    h = hashlib.sha256(len(blob).to_bytes(8, "little"))
    for i in range(blocks):
        off = (len(blob) - b) * i // (blocks - 1)
        h.update(blob[off:off + b])
    return h.hexdigest()


def test_shards_give_the_reference_tokens_for_1_and_2_workers(tmp_path, wiki_docs, tokenizer_file):
    src = _write_shards(tmp_path / "src", wiki_docs)
    ref = _reference(wiki_docs, tokenizer_file)
    lines: list[str] = []
    outs = []
    for workers, unit_mb in ((1, 64.0), (2, 0.02)):  # one unit per shard vs ~70 units: same bytes
        out = tmp_path / f"out{workers}"
        preparation.prepare(out, source_dir=src, tokenizer_file=tokenizer_file, cache_dir=tmp_path / "cache",
                     log=lines.append, settings=StreamSettings(workers=workers, unit_mb=unit_mb, batch_mb=0.05,
                                                               progress_s=0.0))
        outs.append(out)
    meta = tokens.read_meta(outs[0])
    assert meta["tokenizer"] == "hf" and meta["dtype"] == "uint16" and meta["eot_id"] == 1
    assert meta["eot_token"] == "<|endoftext|>" and meta["vocab_size"] == 1200
    for split in tokens.SPLITS:
        got = [np.asarray(tokens.load_tokens(o, split)) for o in outs]
        assert (outs[0] / f"{split}.bin").read_bytes() == (outs[1] / f"{split}.bin").read_bytes()
        np.testing.assert_array_equal(got[0], ref[split])
        info = meta["splits"][split]
        assert info["n_docs"] == int((ref[split] == 1).sum())
        rule = meta["checksum_sample"]
        assert info["sampled_sha256"] == _naive_sampled_sha256(outs[0] / info["file"], rule["blocks"], rule["block_bytes"])
    assert tokens.read_meta(outs[1])["splits"] == meta["splits"]
    assert tokenizer.get_tokenizer(outs[0]).decode(ref["val"][:50].tolist()) in "\n".join(wiki_docs)
    sources = json.loads((outs[0] / "sources.json").read_text())["sources"][0]
    stages = sources["stages_s"]  # where the time went: main-process stages, worker CPU by kind of work
    assert {"plan", "tokenize pass", "select", "write"} <= set(stages) and stages["tokenize pass"] > 0
    assert set(stages["worker_cpu"]) == {"read", "hash", "tokenize", "write"} and stages["worker_cpu"]["tokenize"] > 0
    assert sources["n_files"] == 5 + (len(wiki_docs) - 5 * (len(wiki_docs) // 6)) and sources["ignored_files"] == {".pdf": 1}
    progress = [m for m in lines if m.startswith("  tokenizing")]
    assert any(re.search(r"\d+% of .*, [\d,]+ documents, [\d.]+[kM]? tokens, [\d.]+ MB/s of text, ETA \d+ (s|min)", m)
               for m in progress), progress
    assert not list(tmp_path.glob(".out*"))  # no work or temporary directory left behind


def test_vocabulary_decides_uint32(tmp_path):
    """A word-level tokenizer file with 70,000 entries: token files of uint32."""
    vocab = {"[UNK]": 0, "<|endoftext|>": 1, **{f"w{i}": i + 2 for i in range(70_000)}}
    spec = {"version": "1.0", "truncation": None, "padding": None, "normalizer": None, "post_processor": None,
            "decoder": None, "pre_tokenizer": {"type": "WhitespaceSplit"},
            "added_tokens": [{"id": 1, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}],
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}
    tok = tmp_path / "words.json"
    tok.write_text(json.dumps(spec))
    (tmp_path / "src").mkdir()
    docs = [" ".join(f"w{(i * 7919 + j * 104729) % 70_000}" for j in range(20)) for i in range(50)]
    (tmp_path / "src" / "d.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    out = preparation.prepare(tmp_path / "out", source_dir=tmp_path / "src", tokenizer_file=tok, log=lambda m: None,
                       settings=StreamSettings(workers=1))
    meta = tokens.read_meta(out)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_002
    both = np.concatenate([tokens.load_tokens(out, s) for s in tokens.SPLITS])
    assert both.max() > 65_535 and int((both == 1).sum()) == 50


def test_errors_name_the_shard_and_the_fix(tmp_path, wiki_docs, tokenizer_file):
    def fails(files: dict[str, bytes], match: str, **kw) -> None:
        src = tmp_path / f"src{len(list(tmp_path.iterdir()))}"
        src.mkdir()
        for name, blob in files.items():
            (src / name).write_bytes(blob)
        with pytest.raises(DataError, match=match):
            preparation.prepare(tmp_path / "out", source_dir=src, log=lambda m: None, settings=StreamSettings(workers=2), **kw)
        assert not (tmp_path / "out").exists()

    table = pa.table({"body": wiki_docs[:20]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    fails({"x.parquet": sink.getvalue().to_pybytes()},
          r"x\.parquet: no column 'text' \(its columns: body\); fix: .*--text-column")
    fails({"y.jsonl.zst": zstandard.ZstdCompressor().compress(b'{"content": "some text"}\n')},
          r"y\.jsonl\.zst \(line 1\): no field 'text' \(it has: content\); fix: .*--text-column")
    fails({"z.jsonl": b'{"text": "fine"}\n{"body": "no text here"}\n'}, r"z\.jsonl \(line at byte 17\): no field 'text'")
    fails({"bad.parquet": b"PAR1 this is not really parquet"}, r"bad\.parquet: unreadable shard .*fix: re-download")
    whole = zstandard.ZstdCompressor().compress(b"".join(json.dumps({"text": d}).encode() + b"\n" for d in wiki_docs[:200]))
    fails({"cut.jsonl.zst": whole[: len(whole) // 2]}, r"cut\.jsonl\.zst.*unreadable shard .*truncated")
    whole = gzip.compress(b"".join(json.dumps({"text": d}).encode() + b"\n" for d in wiki_docs[:200]))
    fails({"cut.jsonl.gz": whole[: len(whole) // 2]}, r"cut\.jsonl\.gz \(line \d+\): unreadable shard \(EOFError")
    fails({"j.jsonl": b'{"text": "ok"}\n{"text": oops}\n'}, r"j\.jsonl \(line at byte 15\): not valid JSON")
    big = {"version": "1.0", "added_tokens": [], "model": {"type": "WordLevel", "unk_token": "[UNK]",
                                                           "vocab": {"[UNK]": 0, "huge": 1 << 32}}}
    (tmp_path / "big.json").write_text(json.dumps(big))
    fails({"t.txt": b"Some text."}, r"big\.json: token id 4,294,967,296 \('huge'\) exceeds uint32.*fix:",
          tokenizer_file=tmp_path / "big.json")
    no_eot = json.loads(tokenizer_file.read_text())
    no_eot["added_tokens"] = [a for a in no_eot["added_tokens"] if a["content"] != "<|endoftext|>"]
    no_eot["model"]["vocab"].pop("<|endoftext|>")
    (tmp_path / "noeot.json").write_text(json.dumps(no_eot))
    fails({"t.txt": b"Some text."}, r"noeot\.json has none of the usual end-of-text tokens.*--eot-token",
          tokenizer_file=tmp_path / "noeot.json")


def _peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory of the largest process of a command and its children (MB)."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    rc, kb = out.stdout.split()
    assert rc == "0", out.stderr
    return int(kb) / 1024


def test_memory_does_not_grow_with_the_corpus(tmp_path, wiki_docs):
    """Text files (which the old in-memory reader also took): 1x and 4x the text, same peak memory."""
    text_mb = {}
    for copies in (1, 5):
        src = tmp_path / f"src{copies}"
        src.mkdir()
        for k in range(copies):
            for i in range(0, len(wiki_docs), 20):
                (src / f"c{k}_{i:05d}.txt").write_text("\n\n".join(f"Copy {k}. {d}" for d in wiki_docs[i:i + 20]) * 4)
        text_mb[copies] = sum(p.stat().st_size for p in src.iterdir()) / 1e6
    run = ("import sys; from corpus.prepare import prepare; from corpus.stream import StreamSettings; "
           "prepare(sys.argv[1], source_dir=sys.argv[2], log=lambda m: None, settings=StreamSettings(workers=2))")
    peak = {c: _peak_rss_mb([sys.executable, "-c", run, str(tmp_path / f"out{c}"), str(tmp_path / f"src{c}")])
            for c in (1, 5)}
    growth, more_text = peak[5] - peak[1], text_mb[5] - text_mb[1]
    assert more_text > 15
    assert growth < max(8.0, 0.25 * more_text), f"peak {peak} MB for {text_mb} MB of text"


def test_seen_set_and_kth_smallest_match_naive_references():
    rng = np.random.default_rng(0)
    seen, naive = docset.SeenSet(capacity=16), set()
    for _ in range(30):  # duplicates within and across batches, several table growths
        keys = rng.integers(0, 3000, size=rng.integers(0, 400), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        expected = []
        for k in keys.tolist():
            expected.append(k not in naive)
            naive.add(k)
        assert seen.add(keys).tolist() == expected
    assert seen.n == len(naive)
    values = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64)
    values[:50] = values[50]  # ties
    for k in (1, 7, 2500, 5000):
        kth = docset.KthSmallest()
        for part in np.array_split(values, 7):
            kth.count(part)
        kth.choose(k)
        for part in np.array_split(values, 3):
            kth.collect(part)
        assert kth.result() == int(np.sort(values)[k - 1])


def _naive_pieces(text: str, size: int) -> list[str]:
    """The whole-file rule: clean the text, cut after each blank line, pack pieces of <= size."""
    text = shards.clean(text)
    out, cur, n = [], [], 0
    for par in re.split(r"(?<=\n\n)", text):
        if n and n + len(par) > size:
            out.append("".join(cur))
            cur, n = [], 0
        cur.append(par)
        n += len(par)
    out.append("".join(cur))
    return [p for p in out if p.strip()]


def test_text_pieces_stream_like_the_whole_file_rule(tmp_path):
    rng = np.random.default_rng(1)
    atoms = ["word ", "Sentence. ", "\n", "\n\n", "\r\n", "\r\n\r\n", "  ", "\x00", "\u200b", "\t", "\n \n", "é"]
    for case in range(200):
        text = "".join(rng.choice(atoms, size=rng.integers(0, 60)))
        path = tmp_path / f"{case}.txt"
        path.write_bytes(text.encode())
        with open(path, encoding="utf-8", newline="") as f:
            assert list(shards.text_pieces(f, size=40)) == _naive_pieces(text, 40), repr(text)


def _cli(*args: str) -> list[str]:
    """`attnres data prepare` without the training modules' imports (torch: seconds per start)."""
    return [sys.executable, "-m", "corpus", "prepare", *args]


def test_killed_preparation_reruns_cleanly(tmp_path, wiki_docs, tokenizer_file):
    src = _write_shards(tmp_path / "src", wiki_docs)
    out = tmp_path / "out"
    args = _cli("--source-dir", str(src), "--tokenizer-file", str(tokenizer_file), "--out", str(out),
                "--workers", "2", "--unit-mb", "0.04", "--batch-mb", "0.01")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.work-*/units/*.idx.npy")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing that looks prepared
    with pytest.raises(DataError, match="does not exist"):
        tokens.read_meta(out)
    assert list(tmp_path.glob(".out.work-*/units/*.idx.npy"))  # finished units are kept
    rerun = subprocess.run(args, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    m = re.search(r"resuming: (\d+) of (\d+) units already done", rerun.stderr)
    assert m and 0 < int(m.group(1)) < int(m.group(2)), rerun.stderr
    ref = _reference(wiki_docs, tokenizer_file)
    for split in tokens.SPLITS:
        np.testing.assert_array_equal(np.asarray(tokens.load_tokens(out, split)), ref[split])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # work directory removed
