"""Objectives: callables ``objective(model, x) -> dict`` of named loss terms.

Every objective returns a dictionary whose ``"loss"`` entry is the scalar that
:func:`aecourse.fit` minimises; the other entries are logged in the history
(per epoch, train and validation) so a chapter can plot each term.

Conventions, used throughout the course:

* Losses are **sums over the dimensions of one example, averaged over the
  batch** (as a negative log-likelihood is), not means over pixels. A squared
  error of 12.3 on MNIST means 12.3 summed over 784 pixels.
* Objectives are small frozen dataclasses, so their settings appear in their
  ``repr`` -- which is what keys the checkpoint cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

Terms = dict[str, torch.Tensor]


class Objective(Protocol):
    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms: ...


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example squared error ``||x_hat - x||^2`` summed over all but the batch dimension."""
    if x_hat.shape != x.shape:
        raise ValueError(
            f"reconstruction has shape {tuple(x_hat.shape)} but the input has {tuple(x.shape)}; "
            "the decoder must output the input's shape."
        )
    return (x_hat - x).pow(2).reshape(len(x), -1).sum(dim=1)


@dataclass(frozen=True)
class Reconstruction:
    """The plain autoencoder objective: mean over the batch of ``||r(x) - x||^2``.

    ``model(x)`` must return the reconstruction (a tensor of ``x``'s shape).
    """

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        x_hat = model(x)
        rec = squared_error(x_hat, x).mean()
        return {"loss": rec, "reconstruction": rec}
