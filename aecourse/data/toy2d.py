"""Two-dimensional distributions whose density and score are known in closed form.

A Gaussian mixture with isotropic components is closed under adding Gaussian
noise: convolving it with N(0, sigma^2 I) adds sigma^2 to every component's
variance. That makes it the right test bed for denoising autoencoders, whose
optimal output is known exactly through Tweedie's formula (see the denoising
chapter):

    E[x | x~] = x~ + sigma^2 * grad log p_sigma(x~).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture2D:
    """A mixture of isotropic 2-D Gaussians ``sum_k w_k N(mu_k, std^2 I)``.

    Attributes:
        means: component means, shape ``(K, 2)``.
        std: the common standard deviation of every component.
        weights: mixing weights, shape ``(K,)``, summing to one.
    """

    means: torch.Tensor
    std: float
    weights: torch.Tensor

    def __post_init__(self) -> None:
        if self.means.ndim != 2 or self.means.shape[1] != 2:
            raise ValueError(f"means must have shape (K, 2), got {tuple(self.means.shape)}")
        if self.weights.shape != (self.means.shape[0],):
            raise ValueError("weights must have one entry per component")
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")
        if torch.any(self.weights < 0) or not math.isclose(float(self.weights.sum()), 1.0, rel_tol=1e-5):
            raise ValueError("weights must be non-negative and sum to one")

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples, shape ``(n, 2)``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, 2, generator=generator)
        return self.means[k] + self.std * eps

    def convolve(self, sigma: float) -> "GaussianMixture2D":
        """The density of ``x + sigma * eps`` with ``eps ~ N(0, I)``: variances add."""
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}")
        return GaussianMixture2D(self.means, math.sqrt(self.std**2 + sigma**2), self.weights)

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=self.means.dtype)
        var = self.std**2
        sq = ((x[:, None, :] - self.means[None, :, :]) ** 2).sum(-1)  # (n, K)
        return torch.log(self.weights)[None, :] - sq / (2 * var) - math.log(2 * math.pi * var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at each row of ``x`` (shape ``(n, 2)``)."""
        return torch.logsumexp(self._component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x), in closed form: ``sum_k r_k(x) (mu_k - x) / std^2``.

        ``r_k(x)`` are the posterior responsibilities of the components.
        """
        x = torch.as_tensor(x, dtype=self.means.dtype)
        r = torch.softmax(self._component_log_probs(x), dim=1)  # (n, K)
        return (r @ self.means - x) / self.std**2

    def posterior_mean(self, x_noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        """The optimal denoiser E[x | x~] for noise level ``sigma`` (Tweedie's formula)."""
        return x_noisy + sigma**2 * self.convolve(sigma).score(x_noisy)


def ring_mixture(n_components: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture2D:
    """Equal-weight Gaussians spaced evenly on a circle: the classic 2-D test distribution."""
    if n_components < 1:
        raise ValueError("n_components must be at least 1")
    angle = torch.arange(n_components, dtype=torch.float32) * (2 * math.pi / n_components)
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return GaussianMixture2D(means, std, torch.full((n_components,), 1.0 / n_components))


def grid(lim: float = 3.0, n: int = 25) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An ``n x n`` grid over ``[-lim, lim]^2``: returns (points ``(n*n, 2)``, X, Y) for plots."""
    t = torch.linspace(-lim, lim, n)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), xx, yy
