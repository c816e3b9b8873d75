"""The introduction's exercise checks, and the code it shows agrees with the package."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from aecourse.exercises import NotYet
from aecourse.exercises import intro as ex
from aecourse.models import MLPAutoencoder
from aecourse.objectives import Reconstruction

ROOT = Path(__file__).resolve().parents[1]


def test_shown_objective_code_agrees_with_the_package():
    nb = nbformat.read(ROOT / "book" / "intro.ipynb", as_version=4)
    snippets = [m for c in nb.cells if c.cell_type == "markdown"
                for m in re.findall(r"```python\n(.*?)```", c.source, re.S)]
    shown = next(s for s in snippets if "def __call__(self, model, x)" in s)
    namespace: dict = {}
    exec("class Shown:\n" + textwrap.indent(shown, "    "), namespace)
    model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
    x = torch.rand(7, 1, 8, 8)
    a, b = namespace["Shown"]()(model, x), Reconstruction()(model, x)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k])


def test_reconstruction_loss_check_accepts_right_and_explains_wrong(capsys):
    ex.check_reconstruction_loss(lambda xh, x: ((xh - x) ** 2).sum(dim=(1, 2, 3)).mean())
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(NotYet, match="averaged over the pixels"):
        ex.check_reconstruction_loss(lambda xh, x: ((xh - x) ** 2).mean())
    with pytest.raises(NotYet, match="one value per example"):
        ex.check_reconstruction_loss(lambda xh, x: ((xh - x) ** 2).flatten(1).sum(1))
    with pytest.raises(NotYet, match="NotImplementedError"):
        ex.check_reconstruction_loss(lambda xh, x: (_ for _ in ()).throw(NotImplementedError()))


def test_identity_check():
    x = torch.rand(4, 1, 5, 5)
    ex.check_identity_autoencoder(lambda d: nn.Identity(), x)
    with pytest.raises(NotYet):
        ex.check_identity_autoencoder(lambda d: nn.Linear(d, d), x)
    with pytest.raises(NotYet, match="nn.Module"):
        ex.check_identity_autoencoder(lambda d: None, x)


def test_index_code_check():
    x_train, x_test = torch.rand(20, 1, 4, 4), torch.rand(5, 1, 4, 4)
    flat = x_train.flatten(1)

    def encode(x):
        return torch.cdist(x.flatten(1), flat).argmin(dim=1).float()

    errors = ex.check_index_code(encode, lambda z: x_train[z.long()], x_train, x_test)
    assert errors["train"] == 0.0 and errors["test"] > 0
    with pytest.raises(NotYet, match="one number per image"):
        ex.check_index_code(lambda x: x.flatten(1)[:, :2], lambda z: x_train[: len(z)], x_train, x_test)


def test_not_yet_renders_without_a_traceback():
    assert NotYet("x differs")._render_traceback_() == ["Not yet: x differs"]
