"""records/tokens.py, the reader of prepared token data: the start-of-training check (size plus a sampled
checksum), and that reading needs neither torch nor the preparation code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corpus.prepare import prepare
from records import tokens
from records.tokens import SAMPLE_BLOCK_BYTES as CHUNK
from records.tokens import SAMPLE_BLOCKS as SAMPLES
from records.tokens import DataError, check_split, sampled_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def prepared(tmp_path):
    ids = np.random.default_rng(1).integers(0, 1000, 3_000_000).astype(np.uint16)  # 6 MB: more than 4 MiB
    np.save(tmp_path / "t.npy", ids)
    return prepare(tmp_path / "d", token_files=[tmp_path / "t.npy"], vocab_size=1000, log=lambda m: None)


def _flip(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_sampled_checksum_is_recorded_and_checked(prepared):
    meta = tokens.read_meta(prepared)
    train = prepared / meta["splits"]["train"]["file"]
    assert meta["splits"]["train"]["sampled_sha256"] == sampled_sha256(train)
    assert check_split(prepared, "train") == "train: size and sampled checksum ok"
    size = train.stat().st_size
    assert size > SAMPLES * CHUNK
    _flip(train, size - 1)  # the last chunk is always sampled
    with pytest.raises(DataError, match="sampled checksum differs.*attnres data prepare"):
        check_split(prepared, "train")
    _flip(train, size - 1)
    stride = (size - CHUNK) // (SAMPLES - 1)
    _flip(train, CHUNK + (stride - CHUNK) // 2)  # between two samples: the documented blind spot
    assert check_split(prepared, "train").endswith("sampled checksum ok")
    with pytest.raises(DataError, match="sha256"):  # the full check (attnres data info) still sees it
        tokens.load_tokens(prepared, "train")


def test_older_preparations_are_checked_in_full(prepared):
    meta_path = prepared / "meta.json"
    meta = json.loads(meta_path.read_text())
    for s in meta["splits"].values():
        del s["sampled_sha256"]
    meta_path.write_text(json.dumps(meta))
    assert "full sha256 ok" in check_split(prepared, "val") and "re-prepare" in check_split(prepared, "val")
    _flip(prepared / meta["splits"]["val"]["file"], 10)
    with pytest.raises(DataError, match="sha256 differs"):
        check_split(prepared, "val")
    with open(prepared / meta["splits"]["train"]["file"], "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(DataError, match="truncated or corrupt"):
        check_split(prepared, "train")


def _modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code` (from the checkout)."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def test_reading_prepared_data_needs_neither_torch_nor_the_preparation_code(prepared):
    """What a compute node runs to read and check prepared data (records/tokens.py) loads no torch and
    none of the writer's code (corpus/, tokenizers, pyarrow): the format has one reader."""
    mods = _modules_after(f"from records.tokens import check_split, load_tokens, read_meta\n"
                          f"d = {str(prepared)!r}\nread_meta(d); load_tokens(d, 'val')\n"
                          f"check_split(d, 'train'); check_split(d, 'val')")
    assert "records.tokens" in mods
    loaded = [m for m in mods if m.split(".")[0] in ("torch", "corpus", "tokenizers", "pyarrow", "harness")]
    assert loaded == [], loaded


def test_data_command_help_imports_no_torch_and_no_training_code():
    """`attnres data --help` (and its actions' help) loads corpus/ and the CLI, not torch or the
    compute-node package (harness) at all."""
    mods = _modules_after("import contextlib, io\nfrom attnres.cli import main\n"
                          "for argv in (['data', '--help'], ['data', 'prepare', '--help'], ['data', 'info', '--help']):\n"
                          "    with contextlib.redirect_stdout(io.StringIO()):\n"
                          "        try:\n            main(argv)\n        except SystemExit:\n            pass")
    assert "corpus.cli" in mods and "torch" not in mods
    assert [m for m in mods if m.split(".")[0] == "harness"] == []
