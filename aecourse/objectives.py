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


# --------------------------------------------------------------------------- the VAE

LOG_2PI = 1.8378770664093453  # log(2 pi)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-example ``KL( N(mu, diag(exp(logvar))) || N(0, I) )`` in nats, in closed form.

    ``0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``: non-negative, zero only at
    ``mu = 0, sigma = 1``. (Its negative is the term that appears in the ELBO.)
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu has shape {tuple(mu.shape)} but logvar has {tuple(logvar.shape)}; "
                         "they must match (one mean and one log-variance per latent dimension)")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)
    return kl.reshape(len(mu), -1).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example ``-log p(x | logits)`` of independent Bernoulli pixels (nats), summed over pixels."""
    if logits.shape != x.shape:
        raise ValueError(f"the decoder's logits have shape {tuple(logits.shape)} but the input has "
                         f"{tuple(x.shape)}; they must match")
    nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return nll.reshape(len(x), -1).sum(dim=1)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, sigma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Per-example ``-log N(x; mean, sigma^2 I)`` (nats), normalising constant included:
    ``||x - mean||^2 / (2 sigma^2) + (D / 2) log(2 pi sigma^2)``."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if bool((sigma <= 0).any()):
        raise ValueError(f"sigma must be positive, got {sigma}")
    d = x[0].numel()
    return squared_error(mean, x) / (2 * sigma**2) + 0.5 * d * (LOG_2PI + 2 * torch.log(sigma))


def nll(likelihood: str, decoder_output: torch.Tensor, x: torch.Tensor,
        sigma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Per-example ``-log p(x|z)`` for the decoder output of one ``z`` per example."""
    if likelihood == "bernoulli":
        return bernoulli_nll(decoder_output, x)
    if likelihood == "gaussian":
        return gaussian_nll(decoder_output, x, sigma)
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


@dataclass(frozen=True)
class ELBO:
    """The negative evidence lower bound of a VAE, per example, averaged over the batch.

    ``loss = reconstruction + beta * kl`` where, for each example,

    * ``reconstruction = -log p(x | z)`` at one reparameterised sample ``z ~ q(z|x)``
      (an unbiased one-sample estimate of ``-E_q log p(x|z)``), in nats; for the Gaussian
      likelihood with standard deviation ``sigma`` the normalising constant is included;
    * ``kl = KL(q(z|x) || N(0, I))`` in closed form.

    With ``beta = 1`` the loss is ``-ELBO >= -log p(x)``. ``model`` must have
    ``encode(x) -> (mu, logvar)``, ``reparameterize`` and ``decode`` (see
    :class:`aecourse.models.VAE`). ``sigma`` may be ``"learned"``: then the model's
    ``log_sigma`` parameter is used (as in the linear VAE).
    """

    beta: float = 1.0
    likelihood: str = "bernoulli"
    sigma: float | str = 1.0

    def __post_init__(self):
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.beta < 0:
            raise ValueError(f"beta must be non-negative, got {self.beta}")
        if isinstance(self.sigma, str):
            if self.sigma != "learned":
                raise ValueError(f"sigma must be a positive number or 'learned', got {self.sigma!r}")
        elif not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")

    def _sigma(self, model: nn.Module) -> float | torch.Tensor:
        if self.sigma == "learned":
            if not hasattr(model, "log_sigma"):
                raise AttributeError(f"ELBO(sigma='learned') needs a model with a log_sigma parameter; "
                                     f"{type(model).__name__} has none. Pass a number for sigma instead.")
            return model.log_sigma.exp()
        return self.sigma  # type: ignore[return-value]

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        own = getattr(model, "likelihood", self.likelihood)
        if own != self.likelihood:
            raise ValueError(f"the model's decoder is {own!r} but the objective's likelihood is "
                             f"{self.likelihood!r}; use ELBO(likelihood={own!r})")
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar)
        rec = nll(self.likelihood, model.decode(z).reshape(x.shape), x, self._sigma(model))
        kl = kl_standard_normal(mu, logvar)
        rec, kl = rec.mean(), kl.mean()
        return {"loss": rec + self.beta * kl, "reconstruction": rec, "kl": kl}


@dataclass(frozen=True)
class AnalyticELBO:
    """The negative ELBO computed exactly, for models with ``elbo_terms(x)`` in closed form
    (the linear VAE of :mod:`aecourse.models.ppca`): no sampling, so no gradient noise.

    Returns the same terms as :class:`ELBO` with ``beta = 1``.
    """

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        if not hasattr(model, "elbo_terms"):
            raise AttributeError(f"AnalyticELBO needs a model with an exact elbo_terms(x) method; "
                                 f"{type(model).__name__} has none. Use ELBO() instead.")
        t = model.elbo_terms(x)
        rec, kl = t["reconstruction"].mean(), t["kl"].mean()
        return {"loss": rec + kl, "reconstruction": rec, "kl": kl}


# --------------------------------------------------------------------------- denoising


@dataclass(frozen=True)
class Denoising:
    """The denoising autoencoder objective: mean over the batch of ``||r(c(x)) - x||^2``.

    A DAE is a plain autoencoder trained on corrupted inputs: ``corruption``
    (e.g. :class:`aecourse.corruption.GaussianNoise` or
    :class:`aecourse.corruption.Masking`) is applied afresh to every batch, and
    the target is the *clean* ``x``. With ``GaussianNoise(0)`` it is
    :class:`Reconstruction`.
    """

    corruption: object

    def __post_init__(self) -> None:
        if not callable(self.corruption):
            raise TypeError(f"corruption must be callable as corruption(x) -> x_tilde, got "
                            f"{type(self.corruption).__name__}; e.g. Denoising(GaussianNoise(0.3))")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        x_tilde = self.corruption(x)                     # a fresh corruption every time
        rec = squared_error(model(x_tilde), x).mean()    # compared with the clean input
        return {"loss": rec, "denoising": rec}


# --------------------------------------------------------------------------- sparse autoencoders


def _flat_code(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The code of ``x`` as a matrix ``(N, M)`` and the reconstruction from it."""
    z = model.encode(x)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"a sparsity penalty needs model.encode(x) to return one tensor (the code), got "
                        f"{type(z).__name__}; it does not apply to models whose encoder returns a distribution")
    x_hat = model.decode(z).reshape(x.shape)
    return z.reshape(len(z), -1), x_hat


def bernoulli_kl(rho: float | torch.Tensor, rho_hat: torch.Tensor) -> torch.Tensor:
    """``KL(Bernoulli(rho) || Bernoulli(rho_hat))`` elementwise, in nats.

    ``rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))``: zero where
    ``rho_hat == rho``, positive elsewhere, and infinite as ``rho_hat`` reaches 0 or 1.
    """
    rho = torch.as_tensor(rho, dtype=rho_hat.dtype, device=rho_hat.device)
    if bool(((rho <= 0) | (rho >= 1)).any()):
        raise ValueError(f"the target rho must lie strictly between 0 and 1, got {rho}")
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


@dataclass(frozen=True)
class L1Sparsity:
    """Reconstruction plus an L1 penalty on the code: the classic sparse autoencoder.

    ``loss = mean_n ||x_n - g(f(x_n))||^2 + weight * mean_n sum_j |f_j(x_n)|``

    -- both terms summed over the dimensions of one example and averaged over the
    batch. ``model`` needs ``encode`` (returning the code) and ``decode``. The penalty
    only means something if the decoder cannot grow to compensate for a shrinking
    code (see :class:`aecourse.models.SparseAutoencoder`, whose decoder columns have
    unit norm). Also logged: ``l1`` and ``active`` (mean number of units with
    ``|z_j| > 0`` per example).
    """

    weight: float = 0.1

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"the L1 weight must be non-negative, got {self.weight}")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        z, x_hat = _flat_code(model, x)
        rec = squared_error(x_hat, x).mean()            # sum over pixels, mean over the batch
        l1 = z.abs().sum(dim=1).mean()                  # sum over units, mean over the batch
        active = (z != 0).float().sum(dim=1).mean().detach()
        return {"loss": rec + self.weight * l1, "reconstruction": rec, "l1": l1, "active": active}


@dataclass(frozen=True)
class KLSparsity:
    """Reconstruction plus the KL sparsity penalty on the mean activations (Ng 2011).

    ``loss = mean_n ||x_n - g(f(x_n))||^2 + weight * sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j))``

    where ``rho_hat_j`` is the mean activation of unit ``j`` over the batch. Activations
    must lie in [0, 1] (sigmoid units, :class:`aecourse.models.SparseAutoencoder` with
    ``activation="sigmoid"``). Unlike the L1 penalty this is not a sum of per-example
    terms: it constrains how often each unit is used across the batch, and the batch
    mean is a noisy estimate of the unit's mean over the data. ``eps`` keeps the
    logarithms finite.
    """

    rho: float = 0.05
    weight: float = 1.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 < self.rho < 1:
            raise ValueError(f"the target mean activation rho must lie strictly between 0 and 1, got {self.rho}")
        if not self.weight >= 0:
            raise ValueError(f"the KL weight must be non-negative, got {self.weight}")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        z, x_hat = _flat_code(model, x)
        if bool((z.detach() < 0).any() or (z.detach() > 1).any()):
            raise ValueError(
                f"KLSparsity treats activations as probabilities, so they must lie in [0, 1]; this code "
                f"ranges over [{float(z.detach().min()):.3g}, {float(z.detach().max()):.3g}]. Use sigmoid hidden units, "
                "e.g. SparseAutoencoder(activation='sigmoid'), or the L1 penalty for ReLU units.")
        rec = squared_error(x_hat, x).mean()
        rho_hat = z.mean(dim=0).clamp(self.eps, 1 - self.eps)   # mean activation of each unit
        kl = bernoulli_kl(self.rho, rho_hat).sum()
        return {"loss": rec + self.weight * kl, "reconstruction": rec, "kl_sparsity": kl,
                "mean_activation": z.mean().detach()}


@dataclass(frozen=True)
class MaskedReconstruction:
    """The masked autoencoder's objective: predict the pixels of the patches it did not see.

    A fraction ``mask_ratio`` of each image's patches is removed at random, and the
    squared error is summed over the pixels of the removed patches only (visible
    patches cost nothing), then averaged over the batch. With ``norm_pix`` the
    targets are the patches normalised to zero mean and unit variance each.
    ``model`` must be a :class:`aecourse.models.MaskedAutoencoder` (it needs
    ``predict`` and ``patchify``).
    """

    mask_ratio: float = 0.75
    norm_pix: bool = False

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        from aecourse.models.masked import masked_patch_loss

        if not hasattr(model, "predict") or not hasattr(model, "patchify"):
            raise TypeError(f"MaskedReconstruction needs a MaskedAutoencoder, got {type(model).__name__}")
        pred, masking = model.predict(x, self.mask_ratio)
        rec = masked_patch_loss(pred, model.patchify(x), masking.mask, norm_pix=self.norm_pix)
        return {"loss": rec, "masked_reconstruction": rec}


# --------------------------------------------------------------------------- weight decay (linear PCA chapter)


@dataclass(frozen=True)
class WeightDecay:
    """Reconstruction plus an explicit L2 penalty on the weight matrices:

    ``loss = mean_n ||x_n - r(x_n)||^2 + lam * sum_W ||W||_F^2``

    where the sum runs over every parameter with two or more dimensions (the weight
    matrices; biases are not penalised). For a linear autoencoder that is
    ``lam * (||W1||_F^2 + ||W2||_F^2)``. Written into the objective, the penalty is part
    of the loss that is minimised and recorded, whatever the optimiser. (``fit``'s
    ``weight_decay=wd`` instead adds ``wd * W`` to the gradient: the penalty
    ``(wd / 2) ||W||^2``, with half the weight, invisible in the recorded loss.)
    """

    lam: float

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise ValueError(f"lam must be a non-negative number, got {self.lam!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        rec = squared_error(model(x), x).mean()
        weights = [p for p in model.parameters() if p.ndim >= 2]
        if not weights:
            raise ValueError(f"{type(model).__name__} has no weight matrices to penalise")
        penalty = sum(w.pow(2).sum() for w in weights)
        return {"loss": rec + self.lam * penalty, "reconstruction": rec, "weight_penalty": penalty}


# --------------------------------------------------------------------------- controlled capacity (β-VAE chapter)


@dataclass(frozen=True)
class CapacityELBO:
    """The controlled-capacity objective of Burgess et al. (2018).

    ``loss = reconstruction + gamma * |kl - capacity|``, per example averaged over the batch,
    with ``reconstruction`` and ``kl`` exactly as in :class:`ELBO`.

    Instead of pushing the rate (the KL) down with weight ``beta``, it holds the rate near a
    target ``capacity`` (in nats) with a large weight ``gamma``: below the target the KL is
    pushed *up*, above it down. Training with a target that grows from 0, stage by stage,
    lets the code take up information gradually while keeping the reconstructions of a
    model with that much rate. ``capacity=0`` gives the β-VAE objective with ``beta = gamma``
    (the KL is never negative).
    """

    gamma: float = 100.0
    capacity: float = 0.0
    likelihood: str = "bernoulli"

    def __post_init__(self):
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be non-negative, got {self.gamma}")
        if not self.capacity >= 0:
            raise ValueError(f"the capacity is a target KL in nats and must be non-negative, got {self.capacity}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Terms:
        terms = ELBO(beta=1.0, likelihood=self.likelihood)(model, x)
        rec, kl = terms["reconstruction"], terms["kl"]
        return {"loss": rec + self.gamma * (kl - self.capacity).abs(), "reconstruction": rec, "kl": kl}
