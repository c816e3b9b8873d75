"""Denoising autoencoders in the plane, and what to do with their vector field.

A denoising autoencoder (DAE) is an ordinary autoencoder trained with the
:class:`aecourse.objectives.Denoising` objective: the input is corrupted, the
target is clean. Nothing in the network changes, so this module holds only

* :class:`DenoisingMLP`: a small smooth MLP autoencoder for 2-D points, whose
  code is *wider* than the input (the corruption, not a bottleneck, is what
  stops it from copying);
* :func:`displacement` and :func:`learned_score`: the field ``r(x) - x`` and
  the score estimate ``(r(x) - x) / sigma^2`` of the noisy density ``p_sigma``;
* :func:`langevin` and :func:`annealed_langevin`: sampling by following a score.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from aecourse.models.base import Autoencoder

Score = Callable[[torch.Tensor], torch.Tensor]


class DenoisingMLP(Autoencoder):
    """``x (2) -> hidden -> code -> hidden -> x (2)`` with SiLU activations and a linear output.

    SiLU (smooth) rather than ReLU, because we read the network's *field*
    ``r(x) - x`` and ReLU would make it piecewise linear with kinks.

    Args:
        dim: dimension of the points (2 for the plane).
        hidden: width of the hidden layers.
        code_dim: width of the code; it may exceed ``dim``.
    """

    def __init__(self, dim: int = 2, hidden: int = 64, code_dim: int = 32):
        super().__init__((dim,))
        if dim < 1 or hidden < 1 or code_dim < 1:
            raise ValueError(f"dim, hidden and code_dim must be positive, got {dim}, {hidden}, {code_dim}")
        self.code_dim = code_dim
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, code_dim), nn.SiLU())
        self.decoder = nn.Sequential(nn.Linear(code_dim, hidden), nn.SiLU(), nn.Linear(hidden, dim))


def _apply(model: nn.Module, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def displacement(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The DAE's vector field ``r(x) - x`` at each row of ``x`` (no gradients, on the CPU)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return _apply(model, x) - x


def learned_score(model: nn.Module, sigma: float) -> Score:
    """The score estimate ``s(x) = (r(x) - x) / sigma^2`` of a DAE trained with noise level ``sigma``.

    By Tweedie's formula the optimal DAE has ``r(x) - x = sigma^2 grad log p_sigma(x)``, so
    this estimates the score of the *noisy* density ``p_sigma``, not of the data density.
    """
    if not sigma > 0:
        raise ValueError(f"the score needs the training noise level sigma > 0, got {sigma!r}")

    def score(x: torch.Tensor) -> torch.Tensor:
        return displacement(model, x) / sigma**2

    return score


def langevin(score: Score, x0: torch.Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Unadjusted Langevin dynamics: ``x <- x + (eta/2) s(x) + sqrt(eta) xi``, ``xi ~ N(0, I)``.

    For small ``eta`` and many steps the points are distributed (approximately) as the
    density whose score is ``s``. Returns the final points.
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    if not (isinstance(n_steps, int) and n_steps >= 0):
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    x = torch.as_tensor(x0, dtype=torch.float32).clone()
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator)
        x = x + 0.5 * step_size * score(x) + math.sqrt(step_size) * noise
    return x


def annealed_langevin(scores: Sequence[tuple[float, Score]], x0: torch.Tensor, steps_per_level: int,
                      step_scale: float = 0.1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Langevin dynamics through decreasing noise levels (Song and Ermon, 2019).

    ``scores`` is a list of ``(sigma, score_of_p_sigma)`` from the largest to the smallest
    ``sigma``; at level ``sigma`` the step size is ``step_scale * sigma^2``, so each step moves
    the points by a fixed fraction of that level's length scale. Returns the points after each level.
    """
    sigmas = [s for s, _ in scores]
    if not scores:
        raise ValueError("annealed_langevin needs at least one (sigma, score) pair")
    if any(b > a for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"noise levels must decrease (largest first), got {sigmas}")
    x = torch.as_tensor(x0, dtype=torch.float32)
    out = []
    for sigma, score in scores:
        x = langevin(score, x, step_scale * sigma**2, steps_per_level, generator)
        out.append(x)
    return out
