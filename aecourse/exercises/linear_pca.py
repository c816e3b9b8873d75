"""Checks for the exercises of the chapter "Linear autoencoders and PCA"."""

from __future__ import annotations

from typing import Callable

import torch

from aecourse.exercises import NotYet, call_student, compare_tensors, passed
from aecourse.metrics import best_affine_decoder_error, pca


def _synthetic(n: int = 400, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Data with well-separated variances 2^-i along random orthonormal directions, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    scales = 2.0 ** (-0.5 * torch.arange(d, dtype=torch.float64))
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ q.T + 3.0
    return x, torch.randn(d, generator=g)


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, (tuple, list)) and len(value) > 0 and isinstance(value[0], torch.Tensor):
        value = value[0]  # e.g. (directions, variances)
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception:
            raise NotYet(f"{name} should return a tensor, got {type(value).__name__}") from None
    return value.detach().to(torch.float64).cpu()


def check_recover_directions(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(W2, x)`` must return the principal directions (rows, ordered) spanned by the columns of ``W2``.

    The test decoder is ``W2 = V_k A``: the top-``k`` principal directions of the data,
    mixed by a random invertible ``A``, as a trained linear autoencoder's decoder is.
    """
    x, _ = _synthetic()
    p = pca(x)
    k = 4
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(k, k, generator=g, dtype=torch.float64) + 0.5 * torch.eye(k, dtype=torch.float64)
    W2 = p.components[:k].to(torch.float64).T @ mix
    got = _as_tensor(call_student(fn, W2.float(), x.float(), what="recover_directions(W2, x)"),
                     "recover_directions(W2, x)")
    d = x.shape[1]
    if got.shape == (d, k):
        raise NotYet(f"you returned the directions as columns, shape ({d}, {k}); return them as rows, "
                     f"shape ({k}, {d}) (transpose)")
    if got.shape != (k, d):
        raise NotYet(f"expected {k} directions of length {d}, shape ({k}, {d}); got {tuple(got.shape)}")
    gram = got @ got.T
    if not torch.allclose(gram, torch.eye(k, dtype=torch.float64), atol=1e-3):
        raise NotYet("the directions are not orthonormal (rows of unit length, at right angles): "
                     f"largest entry of D D^T - I is {float((gram - torch.eye(k)).abs().max()):.3g}. "
                     "Orthonormalise the columns of W2 first (torch.linalg.qr).")
    truth = p.components[:k].to(torch.float64)
    cos = (got * truth).sum(dim=1).abs()
    if (cos < 0.999).any():
        overlap = (got @ truth.T).abs()
        if torch.allclose(overlap.sum(dim=1), torch.ones(k, dtype=torch.float64), atol=1e-2) and \
                (overlap.max(dim=1).values > 0.999).all():
            raise NotYet("you found the right directions but in the wrong order: sort them by the variance "
                         "of the data along them, largest first")
        raise NotYet(f"direction {int(cos.argmin()) + 1} is not a principal direction: |cos| with the true one is "
                     f"{float(cos.min()):.3f}. Diagonalise the covariance of the data projected onto the "
                     "orthonormal basis, and rotate the basis by its eigenvectors.")
    passed(f"the {k} directions are recovered exactly (|cos| >= {float(cos.min()):.6f}), in order, from a decoder "
           "whose columns were mixed by a random invertible matrix.")


def check_shrinkage(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(variances, lam)`` must return the decoder's singular values ``sqrt(max(0, 1 - lam / sigma^2))``."""
    variances = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25], dtype=torch.float64)
    for lam in (0.0, 0.1, 0.6, 3.0):
        got = _as_tensor(call_student(fn, variances.clone(), lam, what=f"shrunk_singular_values(variances, {lam})"),
                         "shrunk_singular_values")
        expected = (1 - lam / variances).clamp(min=0).sqrt()
        if got.shape != expected.shape:
            raise NotYet(f"expected one singular value per variance, shape {tuple(expected.shape)}; "
                         f"got {tuple(got.shape)}")
        if not torch.isfinite(got).all():
            raise NotYet(f"with lam = {lam} some values are NaN: when lam >= sigma_i^2 the best factor is 0 "
                         "(the direction is switched off), not the square root of a negative number")
        if torch.allclose(got, expected**2, atol=1e-6) and not torch.allclose(got, expected, atol=1e-6):
            raise NotYet(f"with lam = {lam} you returned q_i = 1 - lam / sigma_i^2, the factor by which the "
                         "reconstruction shrinks; W2 W1 = W2 W2^T has it, so each weight matrix has its square root")
        compare_tensors(got, expected, f"shrunk_singular_values(variances, {lam})", rtol=1e-5, atol=1e-6)
    passed("the singular values shrink as sqrt(1 - lam / sigma_i^2), and a direction with sigma_i^2 <= lam "
           "is switched off.")


def check_affine_decoder_error(fn: Callable[[torch.Tensor, torch.Tensor], float], x: torch.Tensor,
                               k: int = 8, max_examples: int = 10_000) -> dict[str, float]:
    """``fn(h, x)`` must return the least mean squared error of an affine decoder ``B h + c`` from codes ``h``.

    Checked against a least-squares fit on random nonlinear codes of small synthetic data;
    then applied to several encoders of the images ``x`` (a random subset of at most
    ``max_examples`` of them, to keep memory small). Returns the error for each encoder,
    the PCA floor of those images under ``"floor"``, and their number under ``"n"``.
    """
    xs, _ = _synthetic(n=300, d=10, seed=2)
    g = torch.Generator().manual_seed(3)
    hs = torch.tanh(xs @ torch.randn(10, 3, generator=g, dtype=torch.float64) / 3)
    got = call_student(fn, hs.float(), xs.float(), what="best_decoder_error(h, x)")
    try:
        got = float(got)
    except Exception:
        raise NotYet(f"best_decoder_error should return one number, got {type(got).__name__}") from None
    expected = best_affine_decoder_error(hs, xs)
    if abs(got - expected) > 1e-3 * expected:
        coef = torch.linalg.lstsq(hs, xs).solution
        without_c = float((xs - hs @ coef).pow(2).sum() / len(xs))
        if abs(got - without_c) < 1e-3 * without_c:
            raise NotYet("your decoder has no offset c: fit B h + c, e.g. by centring h and x first or by "
                         "appending a column of ones to h")
        if abs(got * xs.shape[1] - expected) < 1e-3 * expected:
            raise NotYet("you averaged over the dimensions too; sum the squared error over the dimensions of "
                         "each example and average over the examples")
        raise NotYet(f"best_decoder_error gave {got:.6g} on a test case where the least-squares decoder reaches "
                     f"{expected:.6g}")
    flat = x.reshape(len(x), -1)
    if len(flat) > max_examples:
        flat = flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(5))[:max_examples]]
    p = pca(flat, k)
    g = torch.Generator().manual_seed(4)
    codes = {
        "PCA code": p.encode(flat, k),
        "tanh of the PCA code": torch.tanh(p.encode(flat, k)),
        "ReLU of random projections": torch.relu((flat - p.mean) @ torch.randn(flat.shape[1], k, generator=g)),
        "sigmoid of random projections": torch.sigmoid(flat @ torch.randn(flat.shape[1], k, generator=g)),
    }
    errors = {name: float(call_student(fn, h, flat, what="best_decoder_error(h, x)")) for name, h in codes.items()}
    floor = p.optimal_error(k)
    worst = min(errors.values())
    if worst < floor * (1 - 1e-4):
        raise NotYet(f"one of the errors, {worst:.4f}, is below the PCA floor {floor:.4f}, which no affine "
                     "decoder can beat: check your least-squares fit")
    passed(f"with {k}-number codes no encoder beats PCA once the decoder is affine: on {len(flat):,} images "
           f"the errors run from {min(errors.values()):.3f} to {max(errors.values()):.3f}, floor {floor:.3f}.")
    return {**errors, "floor": floor, "n": len(flat)}
