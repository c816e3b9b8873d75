"""Checks for the exercises of the chapter on sparse autoencoders."""

from __future__ import annotations

from typing import Callable

import torch

from aecourse.exercises import NotYet, call_student, compare_tensors, passed
from aecourse.models.sparse import top_k
from aecourse.objectives import bernoulli_kl, squared_error


def _scalar(got, name: str) -> torch.Tensor:
    t = torch.as_tensor(got) if not isinstance(got, torch.Tensor) else got
    if t.numel() != 1:
        raise NotYet(f"{name} should return one number for the batch, got a tensor of shape {tuple(t.shape)}; "
                     "average over the batch")
    return t.detach().reshape(()).double()


def check_l1_objective(fn: Callable) -> None:
    """``fn(x_hat, x, z, lam)``: squared error plus ``lam`` times the L1 norm of the code, each summed
    over one example and averaged over the batch."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 28, 28, generator=g)
    x_hat = torch.rand(6, 1, 28, 28, generator=g)
    z = torch.randn(6, 50, generator=g).relu() - 0.1 * torch.rand(6, 50, generator=g)   # some negative entries
    lam = 0.7
    got = _scalar(call_student(fn, x_hat, x, z, lam, what="l1_objective(x_hat, x, z, lam)"), "l1_objective")
    rec = squared_error(x_hat, x).double()
    l1 = z.abs().sum(dim=1).double()
    expected = (rec + lam * l1).mean()
    wrong = {
        "you averaged the penalty over the units instead of summing it; sum |z_j| over the units of each example":
            (rec + lam * z.abs().mean(dim=1).double()).mean(),
        "you averaged the reconstruction error over the pixels as well; sum over the pixels of each image":
            (rec / 784 + lam * l1).mean(),
        "the penalty uses z itself, not its absolute value |z|": (rec + lam * z.sum(dim=1).double()).mean(),
        "you forgot the weight lam on the penalty": (rec + l1).mean(),
        "you summed over the batch; average over the examples instead": (rec + lam * l1).sum(),
    }
    for message, value in wrong.items():
        if torch.isclose(got, value, rtol=1e-5) and not torch.isclose(got, expected, rtol=1e-5):
            raise NotYet(message)
    compare_tensors(got, expected, "l1_objective", rtol=1e-5)
    passed(f"on this random batch the loss is {float(expected):.3f}: error {float(rec.mean()):.3f} "
           f"plus {lam} x L1 {float(l1.mean()):.3f}.")


def check_kl_sparsity(fn: Callable) -> None:
    """``fn(z, rho)``: ``sum_j KL(Bernoulli(rho) || Bernoulli(mean_n z[n, j]))``."""
    g = torch.Generator().manual_seed(4)
    z = torch.rand(32, 40, generator=g) * torch.rand(1, 40, generator=g) * 0.9 + 0.01
    rho = 0.05
    got = _scalar(call_student(fn, z, rho, what="kl_sparsity(z, rho)"), "kl_sparsity")
    zd = z.double()
    rho_hat = zd.mean(dim=0)
    expected = bernoulli_kl(rho, rho_hat).sum()
    reverse = (rho_hat * torch.log(rho_hat / rho) + (1 - rho_hat) * torch.log((1 - rho_hat) / (1 - rho))).sum()
    wrong = {
        "the arguments of the KL are reversed; the penalty is KL(Bern(rho) || Bern(rho_hat_j))": reverse,
        "you averaged over the units; sum the divergence over the units": bernoulli_kl(rho, rho_hat).mean(),
        "you computed a divergence per example and averaged it; take the mean activation over the batch "
        "first, then the divergence": bernoulli_kl(rho, zd.clamp(1e-6, 1 - 1e-6)).sum(dim=1).mean(),
    }
    for message, value in wrong.items():
        if torch.isclose(got, value, rtol=1e-5) and not torch.isclose(got, expected, rtol=1e-5):
            raise NotYet(message)
    compare_tensors(got, expected, "kl_sparsity", rtol=1e-4)
    at_target = _scalar(call_student(fn, torch.full((8, 5), rho), rho, what="kl_sparsity at rho_hat = rho"),
                        "kl_sparsity")
    if abs(float(at_target)) > 1e-6:
        raise NotYet(f"when every unit's mean activation equals rho the penalty should be 0, got {float(at_target):.3g}")
    passed(f"the penalty of this random batch is {float(expected):.4f} nats, and 0 when every unit averages rho.")


def check_top_k(fn: Callable) -> None:
    """``fn(z, k)`` keeps the ``k`` largest entries of each row of ``z`` and zeros the rest."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(7, 30, generator=g)
    for k in (1, 4, 30):
        got = call_student(fn, z.clone(), k, what=f"keep_top_k(z, {k})")
        if isinstance(got, torch.Tensor) and got.shape == z.shape:
            kept = (got != 0).sum(dim=1)
            if bool((kept != k).any()):
                raise NotYet(f"with k = {k} every row should keep exactly {k} entries, but rows keep "
                             f"{kept.tolist()}; take the largest values of each row (dim=1), not of the whole batch")
        compare_tensors(got, top_k(z, k), f"keep_top_k(z, {k})", rtol=0, atol=0)
    passed("each row keeps its k largest entries, in place, and zeros elsewhere.")


def check_truncated_error(fn: Callable, model: torch.nn.Module, x: torch.Tensor, k: int = 5) -> float:
    """``fn(model, x, k)`` is the mean squared error of ``x`` reconstructed from codes cut to the top ``k``.

    Returns the (correct) error.
    """
    with torch.no_grad():
        x_hat = model.decode(top_k(model.encode(x), k)).reshape(x.shape)
    expected = squared_error(x_hat, x).mean().double()
    got = _scalar(call_student(fn, model, x, k, what=f"truncated_error(model, x, {k})"), "truncated_error")
    if torch.isclose(got, expected / x[0].numel(), rtol=1e-4):
        raise NotYet("you averaged over the pixels; sum the squared error over the pixels of each image, "
                     "then average over the images")
    compare_tensors(got, expected, "truncated_error", rtol=1e-4)
    passed(f"with codes cut to {k} units the held-out error is {float(expected):.3f} per image.")
    return float(expected)
