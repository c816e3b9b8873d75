"""Hygiene of the chapter notebooks, the set-up cell, and the book's configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from aecourse.notebook import REPO_URL, SETUP_CELL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} is stored with outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == SETUP_CELL, f"{path.name}: the first code cell must be aecourse.notebook.SETUP_CELL"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_ends_with_a_check_cell(path):
    nb = nbformat.read(path, as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "Claims(" in last.source and ".report()" in last.source, f"{path.name}: no check cell at the end"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_glued_name_in_the_prose_is_glued_in_code(path):
    nb = nbformat.read(path, as_version=4)
    used = set()
    for c in nb.cells:
        if c.cell_type == "markdown":
            used |= set(re.findall(r"\{glue(?::\w+)?\}`([A-Za-z0-9_]+)", c.source))
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    literal = set(re.findall(r"glue\(\s*[\"']([A-Za-z0-9_]+)[\"']", code))
    prefixes = set(re.findall(r"glue\(\s*f[\"']([A-Za-z0-9_]*)\{", code))  # glue(f"name_{k}", ...)
    missing = [n for n in sorted(used)
               if n not in literal and not any(p and n.startswith(p) for p in prefixes)]
    assert not missing, f"{path.name}: prose uses glue names never glued: {missing}"


def test_colab_install_url_matches_config():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"] == REPO_URL
    assert f"git+{REPO_URL}" in SETUP_CELL
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert REPO_URL in pyproject


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    files = toc_files()
    for f in files:
        assert list(ROOT.glob(f + ".*")), f"_toc.yml names {f}, which does not exist"
    in_toc = {str(Path(f).with_suffix("")) for f in files}
    for nb in NOTEBOOKS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in in_toc, f"{nb.name} is not in _toc.yml"


def test_config_sets_what_the_course_relies_on():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] in {"cache", "force"}
    assert cfg["execute"]["timeout"] > 0
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]
    assert cfg["sphinx"]["config"]["bibtex_reference_style"] == "author_year"
    assert cfg["sphinx"]["config"]["nb_kernel_rgx_aliases"] == {".*": "python3"}
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"]
    assert "book/references.bib" in cfg["bibtex_bibfiles"]


def test_cited_keys_exist_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for nb in NOTEBOOKS:
        text = json.dumps([c["source"] for c in json.loads(nb.read_text())["cells"]])
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{nb.name} cites {key.strip()!r}, not in references.bib"
