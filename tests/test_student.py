"""The student edition: every solution removed, every notebook still valid."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from aecourse import student

ROOT = Path(__file__).resolve().parents[1]


def _solution_lines(nb) -> list[str]:
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.splitlines():
            s = line.strip()
            if s.startswith(student.BEGIN):
                inside = True
            elif s.startswith(student.END):
                inside = False
            elif inside and len(s) > 12 and not s.startswith("#"):
                lines.append(s)
    return lines


def test_student_edition_of_the_book(tmp_path):
    written = student.write_student_edition(ROOT / "book", tmp_path)
    sources = sorted((ROOT / "book").glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in sources]
    n_exercises = 0
    for src, out in zip(sources, written):
        original = nbformat.read(src, as_version=4)
        stripped = nbformat.read(out, as_version=4)
        nbformat.validate(stripped)
        text = "\n".join(c.source for c in stripped.cells)
        assert student.BEGIN not in text and student.END not in text
        assert not re.search(r"\{solution(-start|-end)?\}", text), f"{out.name}: a solution block survived"
        outside = "\n".join(c.source for c in original.cells if student.BEGIN not in c.source)
        for line in _solution_lines(original):
            if line in outside:  # also written outside any solution (e.g. a later cell)
                continue
            assert line not in text, f"{out.name}: solution line survived: {line!r}"
        n_stub = text.count("raise NotImplementedError")
        n_exercises += len(re.findall(r"\{exercise\}", text))
        if student.BEGIN in "\n".join(c.source for c in original.cells):
            assert n_stub >= 1
    assert n_exercises >= 2


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_gated_solution_keeps_the_stubbed_code_cell_and_drops_the_rest():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = _nb(
        md("```{exercise} Add\n:label: ex-add\nWrite add.\n```"),
        md("```{solution-start} ex-add\n:class: dropdown\n```"),
        code("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
        md("Because addition adds."),
        code("print('solution-only plot')"),
        md("```{solution-end}\n```"),
        code("check(add)"),
    )
    out = student.student_notebook(nb)
    sources = [c.source for c in out.cells]
    assert sources[0].startswith("```{exercise}")
    assert sources[1] == ("def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError("
                          "\"Exercise: replace this line with your solution.\")")
    assert sources[2] == "check(add)" and len(sources) == 3
    compile(sources[1], "<cell>", "exec")  # still valid Python


def test_plain_solution_directive_and_markdown_answers():
    md = nbformat.v4.new_markdown_cell
    nb = _nb(md("```{solution} ex-1\nThe answer.\n```"),
             md("Answer: ### BEGIN SOLUTION\n42\n### END SOLUTION"))
    out = student.student_notebook(nb)
    assert [c.source for c in out.cells] == ["Answer: YOUR ANSWER HERE"]


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_unbalanced_markers_are_reported(source):
    with pytest.raises(student.SolutionMarkerError):
        student.strip_code(source, "nb, cell 3")


def test_unclosed_gate_is_reported():
    md = nbformat.v4.new_markdown_cell
    with pytest.raises(student.SolutionMarkerError, match="never closed"):
        student.student_notebook(_nb(md("```{solution-start} ex\n```"), md("text")))


def test_exercise_and_gate_in_one_markdown_cell():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = _nb(
        md("## Exercises\n\n```{exercise} Sq\n:label: ex-sq\nSquare it.\n```\n\n"
           "```{solution-start} ex-sq\n:class: dropdown\n```"),
        code("def sq(a):\n    ### BEGIN SOLUTION\n    return a * a\n    ### END SOLUTION"),
        md("Why: squares.\n\n```{solution-end}\n```\n\nNext section."),
    )
    out = student.student_notebook(nb)
    sources = [c.source for c in out.cells]
    assert sources[0] == "## Exercises\n\n```{exercise} Sq\n:label: ex-sq\nSquare it.\n```"
    assert "return a * a" not in sources[1] and "NotImplementedError" in sources[1]
    assert sources[2] == "Next section."
