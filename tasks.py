#!/usr/bin/env python3
"""Set up and run the course: ``python3 tasks.py book`` or ``python3 tasks.py test``.

Both create a virtual environment in ``.venv`` (once; again when
requirements.txt or pyproject.toml change), install requirements.txt and
aecourse (editable) into it, then

* ``book``    build the website into ``_build/html``, executing every chapter, and
              print the page to open;
* ``test``    run the whole suite in quick mode: unit tests of aecourse, nbval
              over every notebook, the student edition, and a ``-W`` book build
              from a clean output folder;
* ``student`` write the student edition (solutions removed) into ``student/``;
* ``bench``   time the budgets (install excluded); see benchmarks/run.py.

Only the Python standard library is used here, so a fresh machine with
Python >= 3.10, pip and git is enough.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".aecourse-installed"


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def _requirements_digest() -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def run(cmd: list[str], env: dict | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def ensure_env() -> Path:
    """Create .venv and install everything into it, unless that is already done."""
    if sys.version_info < (3, 10):
        raise SystemExit(f"Python >= 3.10 is needed; this is {sys.version.split()[0]}.")
    py = venv_python()
    if not py.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _requirements_digest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return py
    t0 = time.perf_counter()
    print("Installing requirements.txt and aecourse (the first time takes a few minutes) ...", flush=True)
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", "requirements.txt"])
    STAMP.write_text(digest)
    print(f"Installed in {time.perf_counter() - t0:.0f} s.", flush=True)
    return py


def course_env(quick: bool) -> dict:
    env = dict(os.environ)
    env["AECOURSE_PROGRESS"] = "0"
    env["PYTHONHASHSEED"] = "0"
    if quick:
        env["AECOURSE_QUICK"] = "1"
    else:
        env.pop("AECOURSE_QUICK", None)
    return env


def build_book(py: Path, out: Path | None = None, quick: bool = False, strict: bool = False) -> Path:
    scripts = py.parent
    jb = scripts / ("jupyter-book.exe" if os.name == "nt" else "jupyter-book")
    cmd = [jb, "build", ".", "--builder", "html"]
    if out is not None:
        cmd += ["--path-output", out]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    run(cmd, env=course_env(quick))
    return (out or ROOT) / "_build" / "html" / "index.html"


def cmd_book() -> None:
    py = ensure_env()
    t0 = time.perf_counter()
    index = build_book(py)
    print(f"\nBuilt in {time.perf_counter() - t0:.0f} s. Open this page in a browser:\n  {index.resolve().as_uri()}")


def cmd_test(extra: list[str]) -> None:
    py = ensure_env()
    env = course_env(quick=True)
    # One process per core (pytest-xdist), each notebook's cells kept on one worker
    # (--dist loadfile), one thread per process so the workers do not fight.
    env.setdefault("OMP_NUM_THREADS", "1")
    env["AECOURSE_CHECKPOINTS"] = "0"  # every test trains: no cached weights hide a change
    run([py, "-m", "pytest", "-n", "auto", "--dist", "loadfile", *extra], env=env)


def cmd_student() -> None:
    py = ensure_env()
    run([py, "-m", "aecourse.student", "student"])


def cmd_bench(parts: list[str]) -> None:
    py = ensure_env()
    run([py, "benchmarks/run.py", *parts], env=course_env(quick=False))


def main(argv: list[str]) -> None:
    commands = {"book": cmd_book, "test": cmd_test, "student": cmd_student, "bench": cmd_bench}
    if not argv or argv[0] not in commands:
        print(__doc__)
        raise SystemExit(2 if argv else 0)
    if argv[0] == "test":
        cmd_test(argv[1:])
    elif argv[0] == "bench":
        cmd_bench(argv[1:])
    else:
        commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
