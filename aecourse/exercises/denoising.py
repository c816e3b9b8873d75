"""Checks for the exercises of the chapter on denoising autoencoders."""

from __future__ import annotations

import math
from typing import Callable

import torch

from aecourse.data.toy2d import GaussianMixture2D
from aecourse.exercises import NotYet, call_student, compare_tensors, passed


def check_mask(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(x, fraction)`` must zero each entry independently with probability ``fraction``
    and leave the other entries unchanged."""
    g = torch.Generator().manual_seed(3)
    x = 0.1 + 0.9 * torch.rand(400, 1, 28, 28, generator=g)  # no zeros to begin with
    for fraction in (0.3, 0.75):
        out = call_student(fn, x.clone(), fraction, what=f"mask(x, {fraction})")
        if not isinstance(out, torch.Tensor):
            raise NotYet(f"mask should return a tensor, got {type(out).__name__}")
        if out.shape != x.shape:
            raise NotYet(f"mask(x, {fraction}) has shape {tuple(out.shape)}; it must keep x's shape {tuple(x.shape)}")
        out = out.detach().float()
        zero = out == 0
        kept = ~zero
        if kept.any() and torch.allclose(out[kept], x[kept] / (1 - fraction), rtol=1e-4):
            raise NotYet("the kept entries were divided by (1 - fraction), as dropout does; masking noise "
                         "leaves them unchanged")
        if not torch.allclose(out[kept], x[kept]):
            raise NotYet("some entries were changed without being set to zero; an entry is either kept "
                         "as it is or set to 0")
        n = zero.numel()
        rate = float(zero.float().mean())
        tol = 6 * math.sqrt(fraction * (1 - fraction) / n)
        if abs(rate - fraction) > tol:
            raise NotYet(f"with fraction={fraction} you zeroed {rate:.3f} of the entries; expected about "
                         f"{fraction} (each entry with probability fraction)")
        per_image = zero.reshape(len(x), -1).float().mean(dim=1)
        if float(per_image.std()) > 0.2:
            raise NotYet("whole images are being zeroed or kept together; every entry must be masked "
                         "independently of the others")
        per_pixel = zero.reshape(len(x), -1).float().mean(dim=0)
        if float(per_pixel.std()) > 0.2:
            raise NotYet("the same pixels are masked in every image; draw a fresh mask for every entry")
    again = call_student(fn, x.clone(), 0.3, what="mask(x, 0.3)")
    if torch.equal(again == 0, call_student(fn, x.clone(), 0.3, what="mask(x, 0.3)") == 0):
        raise NotYet("two calls gave exactly the same mask; the mask must be random, drawn afresh each call")
    passed("each entry is zeroed independently with probability `fraction`, and kept entries are unchanged "
           "(no rescaling).")


def check_gaussian_denoiser(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(x_noisy, mu, s, sigma)`` must be ``E[x | x~]`` for ``x ~ N(mu, s^2 I)``, ``x~ = x + sigma eps``."""
    g = torch.Generator().manual_seed(4)
    mu = torch.tensor([1.0, -0.5])
    for s, sigma in ((0.5, 0.3), (1.2, 2.0)):
        x_noisy = mu + 2.0 * torch.randn(64, 2, generator=g)
        got = call_student(fn, x_noisy.clone(), mu.clone(), s, sigma,
                           what=f"gaussian_denoiser(x_noisy, mu, s={s}, sigma={sigma})")
        expected = GaussianMixture2D(mu[None], s, torch.ones(1)).posterior_mean(x_noisy, sigma)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            swapped = mu + sigma**2 / (s**2 + sigma**2) * (x_noisy - mu)
            if torch.allclose(got.float(), swapped, atol=1e-4):
                raise NotYet("the two variances are swapped: with no noise (sigma -> 0) the best guess must be "
                             "x~ itself, and with huge noise it must be mu")
        compare_tensors(got, expected, f"gaussian_denoiser(..., s={s}, sigma={sigma})", atol=1e-4)
    passed("the optimal denoiser of a Gaussian shrinks x~ towards the mean by s^2 / (s^2 + sigma^2), "
           "and agrees with Tweedie's formula x~ + sigma^2 grad log p_sigma(x~).")


def check_empirical_denoiser(fn: Callable[..., torch.Tensor], x_train: torch.Tensor) -> torch.Tensor:
    """``fn(x_noisy, x_train, sigma)`` must be ``E[x | x~]`` when ``x`` is a uniformly chosen training point.

    The reference is Tweedie's formula for the noisy empirical density, a mixture of Gaussians
    ``N(x_n, sigma^2 I)``. Returns the student's outputs for the last test."""
    g = torch.Generator().manual_seed(5)
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    weights = torch.full((len(x_train),), 1.0 / len(x_train))
    got = None
    for sigma in (0.5, 0.05):
        x_noisy = x_train[torch.randint(len(x_train), (100,), generator=g)] + 3 * sigma * torch.randn(
            100, x_train.shape[1], generator=g)
        got = call_student(fn, x_noisy.clone(), x_train.clone(), sigma,
                           what=f"empirical_denoiser(x_noisy, x_train, sigma={sigma})")
        p_sigma = GaussianMixture2D(x_train, sigma, weights)  # the training points, each blurred by the noise
        expected = x_noisy + sigma**2 * p_sigma.score(x_noisy)
        compare_tensors(got, expected, f"empirical_denoiser(..., sigma={sigma})", atol=2e-4, rtol=1e-3)
    passed("your denoiser is a softmax-weighted average of training points; it agrees with Tweedie's "
           "formula for the noisy empirical density.")
    return got
