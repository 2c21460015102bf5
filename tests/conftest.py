"""Shared fixtures: the real default corpus, prepared once (cached under data/, git-ignored)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def corpus():
    """Path of the prepared default corpus (byte-level). Downloads it on first use."""
    from corpus.prepare import prepare
    from records.tokens import default_data_dir

    return prepare(default_data_dir())
