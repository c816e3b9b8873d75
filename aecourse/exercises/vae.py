"""Checks for the exercises of the VAE chapter."""

from __future__ import annotations

import math
from typing import Callable

import torch

from aecourse.estimators import closed_form_variances
from aecourse.exercises import NotYet, call_student, compare_tensors, passed
from aecourse.objectives import kl_standard_normal


def check_kl(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(mu, logvar)`` must return ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per example, shape ``(N,)``."""
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    got = call_student(fn, mu, logvar, what="kl_diagonal_gaussian(mu, logvar)")
    expected = kl_standard_normal(mu, logvar)
    if not isinstance(got, torch.Tensor):
        raise NotYet(f"return a tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        if got.numel() == 1:
            raise NotYet("you returned one number; return one KL per example (sum over the latent "
                         "dimensions only), shape (N,)")
        if got.shape == mu.shape:
            raise NotYet("you returned one value per latent dimension; sum them for each example")
    got_t = got.reshape(-1) if got.numel() == expected.numel() else got
    if torch.allclose(got_t.detach().double(), -expected.double(), rtol=1e-4, atol=1e-5):
        raise NotYet("your values are the NEGATIVE of the KL (they are <= 0). The expression "
                     "1/2 sum(1 + log s^2 - mu^2 - s^2) is -KL, the term that appears in the ELBO; "
                     "a divergence is never negative.")
    if torch.allclose(got_t.detach().double(), 2 * expected.double(), rtol=1e-4, atol=1e-5):
        raise NotYet("your values are twice the KL: is the factor 1/2 missing?")
    compare_tensors(got, expected, "the KL")
    zero = call_student(fn, torch.zeros(2, 3), torch.zeros(2, 3), what="kl_diagonal_gaussian at the prior")
    compare_tensors(zero, torch.zeros(2), "the KL of the prior to itself")
    passed("the closed form agrees on random inputs, is zero at mu = 0, log s^2 = 0, and is non-negative.")


def check_iw_bound(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(log_w)`` with ``log_w`` of shape ``(N, K)`` must return ``log(1/K sum_k exp(log_w))`` per row."""
    g = torch.Generator().manual_seed(4)
    # log-weights the size of real ones (hundreds of nats): exp() of them underflows to 0 in float32
    log_w = -300.0 + 5.0 * torch.randn(5, 40, generator=g)
    got = call_student(fn, log_w.clone(), what="iw_bound(log_w)")
    expected = torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])
    if not isinstance(got, torch.Tensor):
        raise NotYet(f"return a tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise NotYet(f"return one bound per example (a row of log_w), shape {tuple(expected.shape)}; "
                     f"got {tuple(got.shape)}")
    if not torch.isfinite(got).all():
        raise NotYet("some values are -inf or NaN: exp(log_w) underflows for log-weights near -300. "
                     "Subtract the row maximum before exponentiating (torch.logsumexp does this).")
    got_d = got.detach().double()
    if torch.allclose(got_d, log_w.double().mean(1), atol=1e-4):
        raise NotYet("that is the mean of the log-weights, the ELBO estimate (L_1 averaged), not the "
                     "log of the mean weight")
    if torch.allclose(got_d, torch.logsumexp(log_w, 1).double(), atol=1e-4):
        raise NotYet("the log of the SUM of the weights: divide by K (subtract log K)")
    compare_tensors(got, expected, "the importance-weighted bound", rtol=1e-5, atol=1e-4)
    passed("log of the mean weight, computed stably; with K = 1 it is the one-sample ELBO.")


def check_score_function(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(f, mu, s, n, generator)`` must return ``n`` score-function estimates of ``d/dmu E f(z)``."""
    mu, s, n = 1.0, 0.5, 200_000
    g = torch.Generator().manual_seed(5)
    got = call_student(fn, lambda z: z**2, mu, s, n, g, what="score_function_gradient(f, mu, s, n, generator)")
    if not isinstance(got, torch.Tensor) or got.shape != (n,):
        raise NotYet(f"return a tensor of the n = {n} single-sample estimates, shape ({n},); got "
                     f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
    got = got.detach().double()
    ref = closed_form_variances("z^2 / mu", mu, s)
    mean, var = float(got.mean()), float(got.var())
    se = math.sqrt(ref["score_function"] / n)
    if abs(mean - ref["gradient"]) > 5 * se:
        raise NotYet(f"the estimates average {mean:.3f}, but d/dmu E[z^2] = 2 mu = {ref['gradient']:.3f}: "
                     "the estimator is biased. Multiply f(z) by the score (z - mu) / s^2.")
    if abs(var - ref["reparameterisation"]) < 0.1 * ref["reparameterisation"]:
        raise NotYet("the variance matches the reparameterised estimator's: use only values of f, "
                     "not its derivative")
    if abs(var / ref["score_function"] - 1) > 0.1:
        raise NotYet(f"the mean is right but the variance is {var:.2f}, where the score-function "
                     f"estimator has {ref['score_function']:.2f}")
    passed(f"unbiased (mean {mean:.3f} vs 2 mu = {ref['gradient']:.1f}) with variance {var:.2f} "
           f"(closed form {ref['score_function']:.2f}; the reparameterised estimator has "
           f"{ref['reparameterisation']:.2f}).")
