"""Shards of `attnres data prepare --source-dir`: discovery, work units and streaming document readers.

Formats (found recursively; hidden files and folders are skipped, other files counted and ignored):
    *.parquet                        one document per row: the --text-column string (null: skipped)
    *.jsonl, *.jsonl.gz, *.jsonl.zst one JSON object per line: its --text-column field
    *.txt, *.md, *.rst, *.text       one document per file, cut after blank lines into pieces of at
                                     most MAX_DOC_CHARS characters (so one big book still splits)

Every document is cleaned the same way: CRLF -> LF, control and invisible format characters dropped
(corpus.clean rules; NUL above all, the byte tokenizer's end-of-document token), leading and trailing
whitespace stripped; empty documents are skipped.

A work unit is the unit of parallel work and of resumption. Its boundaries depend only on the files
and `unit_bytes`, never on the number of workers: runs of a parquet file's row groups holding about
unit_bytes of text, byte ranges of a plain .jsonl file cut after a newline, a compressed .jsonl file
whole (gzip and zstd streams cannot be entered in the middle), consecutive text files up to unit_bytes.
Units concatenated in order give every document once, in file order.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from corpus.text import CONTROL
from records.tokens import DataError

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
MAX_DOC_CHARS = 1 << 16
_PARQUET_ROWS = 1024  # rows per record batch read from a row group
_RAW_READ = 1 << 20


def shard_kind(name: str) -> str | None:
    name = name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def clean(text: str) -> str:
    return CONTROL.sub("", text.replace("\r\n", "\n")).strip()


@dataclass(frozen=True)
class Unit:
    index: int
    kind: str  # parquet | jsonl | text
    files: tuple[str, ...]  # paths relative to the source dir (several only for text)
    start: int = 0  # parquet: first row group; plain jsonl: first byte
    stop: int = -1  # parquet: row group after the last; plain jsonl: byte after the last; -1: the end
    weight: int = 0  # bytes of input it accounts for (progress and ETA)


class Consumed:
    """Bytes of input a reader has got through (for progress within a unit)."""

    bytes = 0


def discover(root: Path) -> tuple[list[Path], Counter]:
    """Shard files under root in sorted order, and a count of the ignored files by suffix."""
    if not root.is_dir():
        raise DataError(f"--source-dir {root} is not a directory; fix: point it at a folder of parquet, "
                        "jsonl or text files")
    files, ignored = [], Counter()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if shard_kind(p.name):
            files.append(p)
        else:
            ignored["".join(p.suffixes[-2:]) or p.name] += 1
    if not files:
        raise DataError(f"{root} has no shards (*.parquet, *.jsonl[.gz|.zst], {', '.join(TEXT_SUFFIXES)}); "
                        "fix: point --source-dir at them, or use --corpus")
    return files, ignored


def _where(path: Path, line: int | None = None, offset: int | None = None) -> str:
    if offset is not None:
        return f"{path} (line at byte {offset:,})"
    return f"{path}" + (f" (line {line:,})" if line is not None else "")


def _unreadable(path: Path, e: BaseException, line: int | None = None, offset: int | None = None) -> DataError:
    return DataError(f"{_where(path, line, offset)}: unreadable shard ({type(e).__name__}: {e}); fix: "
                     "re-download or re-create it, or move it out of --source-dir")


# ------------------------------------------------------------------------------ parquet


def _parquet(path: Path, column: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise _unreadable(path, e) from e
    names = pf.schema_arrow.names
    if column not in names:
        raise DataError(f"{path}: no column {column!r} (its columns: {', '.join(names)}); fix: name the text "
                        "column with --text-column NAME")
    kind = pf.schema_arrow.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or str(kind) == "string_view"):
        raise DataError(f"{path}: column {column!r} holds {kind}, not text; fix: name the text column with "
                        "--text-column NAME")
    return pf


def _compressed(md, i: int) -> int:  # noqa: ANN001 - pyarrow FileMetaData
    rg = md.row_group(i)
    return max(1, sum(rg.column(j).total_compressed_size for j in range(rg.num_columns)))


def _parquet_units(path: Path, rel: str, column: str, unit_bytes: int, start_index: int) -> list[Unit]:
    md = _parquet(path, column).metadata
    if md.num_row_groups == 0:
        return []
    col = md.schema.to_arrow_schema().get_field_index(column)
    text = [md.row_group(i).column(col).total_uncompressed_size for i in range(md.num_row_groups)]
    comp = [_compressed(md, i) for i in range(md.num_row_groups)]
    size, total_comp = path.stat().st_size, sum(comp)
    units, first, acc = [], 0, 0
    for i, t in enumerate(text):
        acc += t
        if acc >= unit_bytes or i == len(text) - 1:
            weight = size * sum(comp[first:i + 1]) // total_comp
            units.append(Unit(start_index + len(units), "parquet", (rel,), first, i + 1, weight))
            first, acc = i + 1, 0
    return units


def _parquet_docs(path: Path, unit: Unit, column: str, consumed: Consumed) -> Iterator[str]:
    import pyarrow as pa

    pf = _parquet(path, column)
    comp = [_compressed(pf.metadata, i) for i in range(unit.start, unit.stop)]
    for rg, c in zip(range(unit.start, unit.stop), comp):
        try:
            batches = pf.iter_batches(batch_size=_PARQUET_ROWS, row_groups=[rg], columns=[column], use_threads=False)
            for batch in batches:
                for v in batch.column(0).to_pylist():
                    if v is not None and (doc := clean(v)):
                        yield doc
        except (pa.ArrowException, OSError) as e:
            raise _unreadable(path, e) from e
        consumed.bytes += unit.weight * c // sum(comp)


# ------------------------------------------------------------------------------ jsonl


def _zstd_chunks(raw: io.BufferedReader, path: Path) -> Iterator[bytes]:
    """Decompressed bytes of a (multi-frame) zstd file; a truncated last frame is an error (the
    library's stream reader would end silently there)."""
    import zstandard

    d, fed = zstandard.ZstdDecompressor().decompressobj(), False
    while chunk := raw.read(_RAW_READ):
        while chunk:
            fed = True
            out = d.decompress(chunk)
            if out:
                yield out
            if not d.eof:
                break
            chunk, d, fed = d.unused_data, zstandard.ZstdDecompressor().decompressobj(), False
    if fed and not d.eof:
        raise EOFError("the zstd stream ends inside a frame (truncated file)")


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf, self._pos = chunks, memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # noqa: ANN001 - a writable buffer
        while self._pos >= len(self._buf):
            self._buf, self._pos = memoryview(next(self._chunks, b"")), 0
            if not len(self._buf):
                return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n


def _open_jsonl(raw: io.BufferedReader, path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name.endswith(".zst"):
        return io.BufferedReader(_ChunkReader(_zstd_chunks(raw, path)), _RAW_READ)
    return raw


def _record_text(line: bytes, column: str, where: str) -> str | None:
    try:
        rec = json.loads(line)
    except ValueError as e:
        raise DataError(f"{where}: not valid JSON ({e}); fix: repair the line, or move the shard out of "
                        "--source-dir") from e
    if not isinstance(rec, dict) or column not in rec:
        keys = ", ".join(map(str, rec)) if isinstance(rec, dict) else type(rec).__name__
        raise DataError(f"{where}: no field {column!r} (it has: {keys}); fix: name the text field with "
                        "--text-column NAME")
    v = rec[column]
    if v is not None and not isinstance(v, str):
        raise DataError(f"{where}: field {column!r} holds {type(v).__name__}, not text; fix: name the text "
                        "field with --text-column NAME")
    return v


def _jsonl_lines(path: Path, start: int, stop: int, consumed: Consumed | None) -> Iterator[tuple[bytes, str]]:
    """(line, where) for the lines of a jsonl shard, or of the byte range [start, stop) of a plain one."""
    plain = path.name.lower().endswith(".jsonl")
    with open(path, "rb") as raw:
        raw.seek(start if plain else 0)
        pos, lineno, seen = start, 0, 0
        try:
            for line in _open_jsonl(raw, path):
                lineno += 1
                where = _where(path, offset=pos) if plain else _where(path, line=lineno)
                pos += len(line)
                if line.strip():
                    yield line, where
                if consumed is not None and lineno % 256 == 0:
                    done = (pos if plain else raw.tell()) - start
                    consumed.bytes, seen = consumed.bytes + done - seen, done
                if plain and stop >= 0 and pos >= stop:
                    break
        except (OSError, EOFError, zlib.error) as e:
            raise _unreadable(path, e, None if plain else lineno + 1, pos if plain else None) from e
        except Exception as e:
            if type(e).__name__ == "ZstdError":
                raise _unreadable(path, e, lineno + 1) from e
            raise


def _jsonl_units(path: Path, rel: str, column: str, unit_bytes: int, start_index: int) -> list[Unit]:
    first = next(_jsonl_lines(path, 0, -1, None), None)
    if first is None:
        return []
    _record_text(first[0], column, first[1])  # the text column is there (checked before any work)
    size = path.stat().st_size
    if not path.name.lower().endswith(".jsonl"):
        return [Unit(start_index, "jsonl", (rel,), 0, -1, size)]
    cuts = [0]
    with open(path, "rb") as f:
        while cuts[-1] + unit_bytes < size:
            f.seek(cuts[-1] + unit_bytes - 1)
            f.readline()
            cuts.append(f.tell())
    cuts[-1:] = [cuts[-1], size] if cuts[-1] < size else [size]
    return [Unit(start_index + i, "jsonl", (rel,), a, b, b - a) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def _jsonl_docs(path: Path, unit: Unit, column: str, consumed: Consumed) -> Iterator[str]:
    for line, where in _jsonl_lines(path, unit.start, unit.stop, consumed):
        v = _record_text(line, column, where)
        if v is not None and (doc := clean(v)):
            yield doc


# ------------------------------------------------------------------------------ text files


class _Packer:
    def __init__(self, size: int) -> None:
        self.size, self.cur, self.n = size, [], 0

    def add(self, par: str) -> Iterator[str]:
        if self.n and self.n + len(par) > self.size:
            yield from self.flush()
        self.cur.append(par)
        self.n += len(par)

    def flush(self) -> Iterator[str]:
        if self.cur:
            piece, self.cur, self.n = "".join(self.cur), [], 0
            if piece.strip():
                yield piece


def text_pieces(lines: Iterable[str], size: int = MAX_DOC_CHARS) -> Iterator[str]:
    """The documents of one text file, read line by line (lines as read with newline=""): the same
    as cleaning the whole text (clean()) and cutting it after every "\\n\\n" into paragraphs packed
    into pieces of at most `size` characters (a longer paragraph is a piece of its own)."""
    packer, par, tail, started = _Packer(size), [], "", False
    pending: list[str] = []  # the last paragraph with text, then the whitespace-only ones after it

    def close() -> Iterator[str]:
        p = "".join(par)
        par.clear()
        if p.strip():
            for q in pending:
                yield from packer.add(q)
            pending[:] = [p]
        else:
            pending.append(p)

    for raw in lines:
        line = CONTROL.sub("", raw.replace("\r\n", "\n"))
        if not started:
            line = line.lstrip()
            started = bool(line)
        if not line:
            continue
        par.append(line)
        tail = (tail + line)[-2:]
        if tail == "\n\n":
            yield from close()
    if par:
        yield from close()
    if pending:
        yield from packer.add(pending[0].rstrip())
    yield from packer.flush()


def _text_units(files: list[tuple[Path, str]], unit_bytes: int, start_index: int) -> list[Unit]:
    units, group, acc = [], [], 0
    for path, rel in files:
        group.append(rel)
        acc += path.stat().st_size
        if acc >= unit_bytes:
            units.append(Unit(start_index + len(units), "text", tuple(group), weight=acc))
            group, acc = [], 0
    if group:
        units.append(Unit(start_index + len(units), "text", tuple(group), weight=acc))
    return units


def _text_docs(root: Path, unit: Unit, consumed: Consumed) -> Iterator[str]:
    for rel in unit.files:
        path = root / rel
        try:
            with open(path, encoding="utf-8", newline="") as f:
                yield from text_pieces(f)
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e}); fix: convert it (e.g. `iconv -t utf-8`) or move "
                            "it out of the directory") from e
        except OSError as e:
            raise _unreadable(path, e) from e
        consumed.bytes += path.stat().st_size


# ------------------------------------------------------------------------------ planning and reading


def plan_units(root: Path, files: list[Path], unit_bytes: int, column: str) -> list[Unit]:
    """The work units of these shards, in file order; checks each parquet schema and the first record
    of each jsonl shard for the text column up front."""
    units: list[Unit] = []
    texts: list[tuple[Path, str]] = []
    for path in files:
        rel, kind = str(path.relative_to(root)), shard_kind(path.name)
        if kind == "text":
            texts.append((path, rel))
            continue
        if texts:  # consecutive text files form units between the other shards, in file order
            units += _text_units(texts, unit_bytes, len(units))
            texts = []
        planner = _parquet_units if kind == "parquet" else _jsonl_units
        units += planner(path, rel, column, unit_bytes, len(units))
    return units + _text_units(texts, unit_bytes, len(units))


def read_unit(root: Path, unit: Unit, column: str, consumed: Consumed) -> Iterator[str]:
    """The cleaned, non-empty documents of one work unit, in order."""
    if unit.kind == "text":
        return _text_docs(root, unit, consumed)
    reader = _parquet_docs if unit.kind == "parquet" else _jsonl_docs
    return reader(root / unit.files[0], unit, column, consumed)
