"""Cheap integrity checks of prepared token files at training start.

`attnres data prepare` computes the full sha256 of every split once and also a *sampled* checksum
(``sampled_sha256``, defined in harness/prep/tokenfile.py: the file size and 64 blocks of 64 KiB at
evenly spaced offsets, 4 MiB read whatever the file's size). A training process checks the size and
the sampled checksum, on one rank, and shares the verdict with the others (harness.train), so a
238 GB split costs a few seeks at every start and requeue instead of ~3.4 min of hashing per rank
before the first collective. The sampled check catches a truncated, replaced or regenerated file; a
flipped bit between samples is caught by ``attnres data info`` (the full checksum), not here.
Preparations made before the sampled checksum existed are checked in full once per start, with a
note saying how to make starts cheap.
"""

from __future__ import annotations

from pathlib import Path

from harness.prep.tokenfile import SAMPLE_BLOCK_BYTES, SAMPLE_BLOCKS, sampled_sha256, sha256_file

__all__ = ["SAMPLE_BLOCKS", "SAMPLE_BLOCK_BYTES", "check_split", "sampled_sha256"]


def check_split(data_dir: str | Path, split: str) -> str:
    """Check one split's size and sampled checksum against meta.json; DataError (with the fix) if they
    differ. Returns what was checked, for the run's log."""
    from harness.data import DataError, _fix_command, load_tokens, read_meta

    d = Path(data_dir)
    meta = read_meta(d)
    load_tokens(d, split, verify=False)  # existence and exact size
    info = meta["splits"][split]
    path = d / info["file"]
    want = info.get("sampled_sha256")
    if want:
        if sampled_sha256(path) != want:
            raise DataError(f"{path} is corrupt: its sampled checksum differs from meta.json; "
                            f"{_fix_command(d, meta)}")
        return f"{split}: size and sampled checksum ok"
    if sha256_file(path) != info["sha256"]:
        raise DataError(f"{path} is corrupt: its sha256 differs from meta.json; {_fix_command(d, meta)}")
    return (f"{split}: size and full sha256 ok (prepared before sampled checksums: every start hashes the whole "
            f"file; re-prepare with --force to make starts cheap)")
