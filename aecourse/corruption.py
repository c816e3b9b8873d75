"""Corruptions: what a denoising autoencoder has to undo.

A corruption is a random map ``x -> x~`` applied afresh every time an example
is used, so the network never sees the same corrupted copy twice and cannot
learn the identity. Each corruption is a small frozen dataclass (its settings
show in its ``repr``, which keys the checkpoint cache) called as
``corruption(x, generator=None)``.

* :class:`GaussianNoise`: ``x~ = x + sigma * eps`` with ``eps ~ N(0, I)``: zero
  mean, covariance ``sigma^2 I``.
* :class:`Masking`: every entry of ``x`` is independently set to zero with
  probability ``fraction`` (the "masking noise" of Vincent et al., 2008); the
  entries that are kept are left unchanged (no rescaling, unlike dropout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch


class Corruption(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


def _check_tensor(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} corrupts a torch.Tensor, got {type(x).__name__}; convert with torch.as_tensor(...)")
    if not torch.is_floating_point(x):
        raise TypeError(f"{who} needs float data, got dtype {x.dtype}; use x.float()")


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _rand(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive isotropic Gaussian noise: ``x~ = x + sigma * eps``, ``eps ~ N(0, I)``.

    The noise has mean zero and covariance ``sigma^2 I``; ``sigma`` is a standard
    deviation, in the units of ``x``. ``sigma = 0`` leaves ``x`` unchanged.
    """

    sigma: float

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"sigma is a standard deviation and must be a finite number >= 0, got {self.sigma!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_tensor(x, "GaussianNoise")
        if self.sigma == 0:
            return x.clone()
        return x + self.sigma * _randn(x, generator)

    def expected_error(self, dim: int) -> float:
        """``E ||x~ - x||^2 = dim * sigma^2``: the error of returning the corrupted input unchanged."""
        return dim * self.sigma**2


@dataclass(frozen=True)
class Masking:
    """Masking noise: each entry is set to zero independently with probability ``fraction``.

    Entries that survive keep their value. ``fraction = 0`` leaves ``x`` unchanged.
    """

    fraction: float

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and 0 <= self.fraction < 1):
            raise ValueError(f"fraction is the probability of zeroing an entry and must be in [0, 1), "
                             f"got {self.fraction!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_tensor(x, "Masking")
        if self.fraction == 0:
            return x.clone()
        keep = _rand(x, generator) >= self.fraction
        return x * keep

    def expected_error(self, x: torch.Tensor) -> float:
        """``E ||x~ - x||^2 = fraction * ||x||^2`` averaged over the rows of ``x``."""
        return float(self.fraction * x.reshape(len(x), -1).pow(2).sum(dim=1).mean())


__all__ = ["Corruption", "GaussianNoise", "Masking"]
