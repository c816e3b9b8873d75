"""Write the student edition: every chapter with its solutions removed.

Run ``python -m aecourse.student [OUT_DIR]`` (default ``student/``). In each notebook

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is replaced by
  ``raise NotImplementedError`` (indented like the code it replaces), so the
  exercise cell is still there to fill in;
* solution blocks for the website are dropped: a ``{solution}`` directive, and
  everything from ``{solution-start}`` to ``{solution-end}`` except the code
  cells that carry solution markers (those are kept, stubbed, for the student);
* markdown between the markers becomes "YOUR ANSWER HERE".

The result is validated with nbformat. The check calls after each exercise
stay, so a student's answer is checked where the solution's was.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution.")'
_START = re.compile(r"^\s*(```+|:::+)\s*\{solution-start\}", re.M)
_END = re.compile(r"^\s*(```+|:::+)\s*\{solution-end\}", re.M)
_PLAIN = re.compile(r"^\s*(```+|:::+)\s*\{solution\}", re.M)


class SolutionMarkerError(ValueError):
    """Unbalanced solution markers in a notebook."""


def strip_code(source: str, where: str = "cell") -> str:
    """Replace every marked solution region of a code cell by an indented ``raise NotImplementedError``."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise SolutionMarkerError(f"{where}: '{BEGIN}' twice without '{END}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f"{indent}{STUB}")
        elif stripped.startswith(END):
            if not inside:
                raise SolutionMarkerError(f"{where}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def strip_markdown(source: str, where: str = "cell") -> str:
    if BEGIN not in source:
        return source
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if source.count(BEGIN) != source.count(END):
        raise SolutionMarkerError(f"{where}: unbalanced solution markers")
    return pattern.sub("YOUR ANSWER HERE", source)


def _directive_span(source: str, match: re.Match) -> tuple[int, int]:
    """Start and end offsets of the fenced directive whose opening line ``match`` found."""
    fence = match.group(1)
    line_end = source.find("\n", match.end())
    if line_end == -1:
        return match.start(), len(source)
    closing = re.compile(r"^\s*" + re.escape(fence) + r"\s*$", re.M)
    close = closing.search(source, line_end + 1)
    end = len(source) if close is None else close.end()
    return match.start(), end


def _split_gates(source: str, gated: bool, where: str) -> tuple[str, bool]:
    """Remove solution-start/-end directives and the text they gate from a markdown cell."""
    kept: list[str] = []
    pos = 0
    while True:
        pattern = _END if gated else _START
        m = pattern.search(source, pos)
        other = (_START if gated else _END).search(source, pos)
        if other is not None and (m is None or other.start() < m.start()):
            kind = "solution-start inside another solution" if gated else "solution-end without solution-start"
            raise SolutionMarkerError(f"{where}: {kind}")
        if m is None:
            if not gated:
                kept.append(source[pos:])
            break
        start, end = _directive_span(source, m)
        if not gated:
            kept.append(source[pos:start])
        gated = not gated
        pos = end
    return "".join(kept).strip("\n"), gated


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution removed (see the module docstring)."""
    new = nbformat.from_dict(nb)
    cells = []
    gated = False
    for i, cell in enumerate(new.cells):
        where = f"{name}, cell {i}"
        src = cell.source
        if cell.cell_type == "markdown":
            src, gated_after = _split_gates(src, gated, where)
            while True:  # plain {solution} directives
                m = _PLAIN.search(src)
                if m is None:
                    break
                start, end = _directive_span(src, m)
                src = (src[:start] + src[end:]).strip("\n")
            gated = gated_after
            src = strip_markdown(src, where)
            if not src.strip():
                continue
            cell.source = src
        elif cell.cell_type == "code":
            has_markers = BEGIN in src
            if gated and not has_markers:
                continue  # solution-only code shown on the website
            cell.source = strip_code(src, where)
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    if gated:
        raise SolutionMarkerError(f"{name}: a solution-start is never closed by solution-end")
    new.cells = cells
    nbformat.validate(new)
    return new


def write_student_edition(src: str | Path = "book", out: str | Path = "student") -> list[Path]:
    """Write the student edition of every notebook under ``src`` into ``out``; return the paths."""
    src, out = Path(src), Path(out)
    notebooks = sorted(p for p in src.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {src.resolve()}; run this from the course's root folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_notebook(nb, path.name), target)
        written.append(target)
    for extra in src.glob("*.bib"):
        (out / extra.name).write_bytes(extra.read_bytes())
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = args[0] if args else "student"
    paths = write_student_edition("book", out)
    print(f"Wrote the student edition of {len(paths)} notebooks to {Path(out).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
