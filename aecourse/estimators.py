"""Two Monte Carlo estimators of the gradient of an expectation, and their exact variances.

For ``z ~ N(mu, s^2)`` and a function ``f``, the gradient of ``E[f(z)]`` with respect to
``mu`` (or ``s``) can be estimated from samples in two ways:

* the **score-function** (REINFORCE, likelihood-ratio) estimator
  ``f(z) * d/dmu log N(z; mu, s^2) = f(z) * (z - mu) / s^2``
  (for ``s``: ``f(z) * ((z - mu)^2 / s^3 - 1 / s)``), which needs only values of ``f``;
* the **reparameterisation** (pathwise) estimator: write ``z = mu + s * eps`` with
  ``eps ~ N(0, 1)`` and differentiate ``f(mu + s * eps)``: ``f'(z)`` (for ``s``: ``f'(z) * eps``).

Both are unbiased. Their variances differ, and for two test functions they have closed
forms (:func:`closed_form_variances`), which the VAE chapter compares with measurements.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def score_function_samples(f: Callable[[torch.Tensor], torch.Tensor], mu: float, s: float, n: int,
                           wrt: str = "mu", generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` single-sample score-function estimates of ``d/d(wrt) E_{N(mu, s^2)} f(z)``."""
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    z = mu + s * eps
    if wrt == "mu":
        return f(z) * eps / s
    if wrt == "s":
        return f(z) * (eps**2 - 1) / s
    raise ValueError(f"wrt must be 'mu' or 's', got {wrt!r}")


def reparameterised_samples(f: Callable[[torch.Tensor], torch.Tensor], mu: float, s: float, n: int,
                            wrt: str = "mu", generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` single-sample pathwise estimates, by automatic differentiation of ``f(mu + s * eps)``."""
    if wrt not in ("mu", "s"):
        raise ValueError(f"wrt must be 'mu' or 's', got {wrt!r}")
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    mu_t = torch.full((n,), float(mu), dtype=torch.float64, requires_grad=True)
    s_t = torch.full((n,), float(s), dtype=torch.float64, requires_grad=True)
    f(mu_t + s_t * eps).sum().backward()  # sample i depends only on mu_t[i], s_t[i]
    return (mu_t.grad if wrt == "mu" else s_t.grad).detach()


def closed_form_variances(case: str, mu: float, s: float, omega: float = 1.0) -> dict[str, float]:
    """Exact mean and variances of the single-sample estimators, for ``z ~ N(mu, s^2)``.

    ``case``: ``"z^2 / mu"``, ``"z^2 / s"`` (f = z^2, gradient w.r.t. mu or s) or
    ``"sin / mu"`` (f = sin(omega z), gradient w.r.t. mu). Returns ``{"gradient",
    "score_function", "reparameterisation"}`` (the true gradient, then the two variances).
    Derivations: expand with the Gaussian moments ``E eps^2 = 1, E eps^4 = 3, E eps^6 = 15,
    E eps^8 = 105`` and, for the sine, ``E[cos(a + b eps) eps^2] = cos(a) (1 - b^2) exp(-b^2 / 2)``.
    """
    if case == "z^2 / mu":
        return {"gradient": 2 * mu,
                "score_function": mu**4 / s**2 + 14 * mu**2 + 15 * s**2,
                "reparameterisation": 4 * s**2}
    if case == "z^2 / s":
        return {"gradient": 2 * s,
                "score_function": 2 * mu**4 / s**2 + 60 * mu**2 + 74 * s**2,
                "reparameterisation": 4 * mu**2 + 8 * s**2}
    if case == "sin / mu":
        w = omega
        grad = w * math.cos(w * mu) * math.exp(-(w * s) ** 2 / 2)
        c = 2 * w * s
        second_score = (1 - math.cos(2 * w * mu) * (1 - c**2) * math.exp(-c**2 / 2)) / (2 * s**2)
        second_rep = w**2 / 2 * (1 + math.cos(2 * w * mu) * math.exp(-c**2 / 2))
        return {"gradient": grad, "score_function": second_score - grad**2,
                "reparameterisation": second_rep - grad**2}
    raise ValueError(f"case must be 'z^2 / mu', 'z^2 / s' or 'sin / mu', got {case!r}")
