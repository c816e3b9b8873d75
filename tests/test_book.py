"""The whole book builds with warnings as errors, from a clean output folder, in quick mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_notebooks import toc_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.book
def test_book_builds_without_warnings(tmp_path):
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed: pip install -r requirements.txt")
    out = tmp_path / "book"
    env = dict(os.environ, AECOURSE_QUICK="1", AECOURSE_PROGRESS="0")
    cmd = [jb, "build", str(ROOT), "--builder", "html",
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, "the -W book build failed:\n" + log[-6000:]
    html = out / "_build" / "html"
    for f in toc_files():
        page = html / (f + ".html")
        assert page.exists(), f"{page} was not built"
        text = page.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in text, f"{page.name} shows a traceback"
        assert "ClaimFailed" not in text
