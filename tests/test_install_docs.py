"""`make install` lets the user choose the torch build, and the README says truthfully which build
the default gets (it used to promise a CPU torch that only this project's machines provide)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _install_recipe(*assignments: str) -> str:
    res = subprocess.run(["make", "-n", "-B", "install", *assignments], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return next(line for line in res.stdout.splitlines() if "pip install" in line and "torch" in line)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_chooses_the_torch_build():
    assert _install_recipe().split("pip install -q ", 1)[1].strip() == "torch==2.13.0"
    line = _install_recipe("TORCH_INDEX=file:///some/cpu/index")
    assert line.endswith("torch==2.13.0 --index-url file:///some/cpu/index"), line
    line = _install_recipe("TORCH=/wheels/torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl")
    assert "/wheels/torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl" in line and "--index-url" not in line


def test_readme_says_which_build_install_gets():
    readme = (ROOT / "README.md").read_text()
    assert "pinned CPU torch" not in readme
    section = readme.split("## Installing torch", 1)[1].split("\n## ", 1)[0]
    assert "CUDA build" in section and "TORCH_INDEX" in section and "CPU wheel index" in section
