"""Checks for the exercises of the β-VAE chapter."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from aecourse.exercises import NotYet, as_answer_tensor, call_student, compare_tensors, passed
from aecourse.metrics import mutual_information_discrete


def check_kl_per_latent(fn: Callable) -> None:
    """``fn(mu, logvar)``: the KL of each latent to the prior, averaged over the batch, shape ``(M,)``."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(7, 5, generator=g) * torch.tensor([2.0, 1.0, 0.5, 0.1, 0.0])
    logvar = torch.randn(7, 5, generator=g) * torch.tensor([0.5, 0.5, 0.3, 0.1, 0.0]) - torch.tensor([2.0, 1.0, 0.5, 0.0, 0.0])
    per = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)     # (B, M)
    expected = per.mean(dim=0)
    got = call_student(fn, mu, logvar, what="kl_per_latent(mu, logvar)")
    got = as_answer_tensor(got, "kl_per_latent (shape (5,))")
    if got.shape == (7,):
        raise NotYet("you returned one number per example (summed over the latents); average over the "
                     "examples instead, keeping one number per latent")
    if got.shape == (7, 5):
        raise NotYet("you returned the KL of every example and latent; average over the examples (dim=0)")
    if got.shape != (5,):
        raise NotYet(f"expected one number per latent, shape (5,), got {tuple(got.shape)}")
    for hint, value in {
        "you summed over the batch: average over the examples": per.sum(dim=0),
        "the factor 1/2 is missing": 2 * expected,
        "the sign of the log-variance term is wrong: it is -log sigma^2": (0.5 * (mu.pow(2) + logvar.exp()
                                                                            + logvar - 1.0)).mean(dim=0),
        "exp(logvar) is the variance sigma^2; you used the standard deviation": (0.5 * (mu.pow(2) + (0.5 * logvar).exp()
                                                                                      - logvar - 1.0)).mean(dim=0),
    }.items():
        if torch.allclose(got, value, rtol=1e-4, atol=1e-5) and not torch.allclose(value, expected):
            raise NotYet(hint)
    compare_tensors(got, expected, "kl_per_latent(mu, logvar)", rtol=1e-4, atol=1e-5)
    passed(f"KL per latent {[round(v, 3) for v in expected.tolist()]} nats; their sum, "
           f"{float(expected.sum()):.3f}, is the rate. The last latent has mu = 0 and sigma = 1: it is "
           "exactly the prior and costs nothing.")


def check_mutual_information(fn: Callable) -> None:
    """``fn(a, b)``: the plug-in mutual information (nats) of two discrete variables from paired samples."""
    rng = np.random.default_rng(5)
    cases = []
    a = rng.integers(0, 4, size=2000)
    cases.append(("a variable with itself", a, a.copy(), math.log(4)))
    x, y = np.meshgrid(np.arange(5), np.arange(6))
    cases.append(("two independent variables (a product grid)", x.ravel(), y.ravel(), 0.0))
    c = rng.integers(0, 6, size=500)
    d = (c // 2 + rng.integers(0, 2, size=500)) % 4
    cases.append(("two dependent variables", c, d, None))
    e = rng.integers(3, 9, size=300) * 10
    cases.append(("values that are not 0..K-1", e, (e // 20) % 3, None))
    for name, u, v, exact in cases:
        expected = mutual_information_discrete(u, v)
        got = call_student(fn, torch.as_tensor(u), torch.as_tensor(v), what=f"mutual_information on {name}")
        try:
            got = float(got)
        except Exception:
            raise NotYet(f"mutual_information should return one number, got {type(got).__name__}") from None
        if not math.isfinite(got):
            raise NotYet(f"on {name} you returned {got}: skip the empty cells of the table (0 log 0 = 0)")
        if abs(got - expected) > 1e-6 * max(1.0, expected):
            if expected > 0 and abs(got - expected / math.log(2)) < 1e-6 * max(1.0, expected):
                raise NotYet("you measured in bits (log base 2); the course measures information in nats")
            raise NotYet(f"on {name} you got {got:.5f} nats, expected {expected:.5f}"
                         + (f" (exactly {exact:.5f})" if exact is not None else ""))
    passed("your estimator agrees with aecourse.metrics.mutual_information_discrete on all four cases, "
           "including I = log 4 for a variable with itself and I = 0 for independent variables.")


def check_traverse(fn: Callable, model: torch.nn.Module, x: torch.Tensor) -> None:
    """``fn(model, x, j, values)``: decoded means of ``mu(x)`` with latent ``j`` set to each value."""
    from aecourse.plots import traverse

    values = torch.linspace(-2.0, 2.0, 5)
    model.eval()
    for j in (0, model.code_dim - 1):
        expected = traverse(model, x, j, values)
        got = call_student(fn, model, x, j, values, what=f"traverse_latent(model, x, {j}, values)")
        if not isinstance(got, torch.Tensor):
            raise NotYet(f"traverse_latent should return a tensor of images, got {type(got).__name__}")
        got = got.detach().cpu()
        if got.numel() != expected.numel():
            raise NotYet(f"expected {len(values)} images of shape {tuple(x.shape[-3:])} "
                         f"({expected.numel()} numbers), got shape {tuple(got.shape)}")
        got = got.reshape(expected.shape)
        with torch.no_grad():
            mu, _ = model.encode(x.reshape(1, *x.shape[-3:]))
            z = mu.repeat(len(values), 1)
            z[:, j] = values
            logits = model.decode(z).reshape(expected.shape).cpu()
        if torch.allclose(got, logits, atol=1e-5):
            raise NotYet("you returned the decoder's logits: apply the sigmoid (model.mean) to get images")
        if got.min() < 0 or got.max() > 1:
            raise NotYet("your images have values outside [0, 1]: return the mean of p(x|z), sigmoid of the logits")
        if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            again = call_student(fn, model, x, j, values, what="traverse_latent")
            if isinstance(again, torch.Tensor) and not torch.allclose(again.detach().cpu().reshape(expected.shape),
                                                                      got, atol=1e-6):
                raise NotYet("two calls gave different images: start from the posterior mean mu(x), "
                             "not from a random sample of q(z|x)")
        compare_tensors(got, expected, f"the traversal of latent {j}", atol=1e-5, rtol=1e-4)
    passed(f"each row keeps mu(x) in {model.code_dim - 1} latents and sets one latent to -2, -1, 0, 1, 2.")
