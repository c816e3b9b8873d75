"""Probabilistic PCA (Tipping & Bishop 1999) and the linear VAE (Lucas et al. 2019).

Probabilistic PCA is the linear-Gaussian latent-variable model

    z ~ N(0, I_M),        x | z ~ N(W z + mu, sigma^2 I_D),

whose marginal ``p(x) = N(mu, W W^T + sigma^2 I)`` and posterior ``p(z|x)`` are
Gaussian and exact. It is the one latent-variable model in the course where
``log p(x)`` and ``KL(q || p(z|x))`` can be computed, so it is where the VAE's bound
is checked. Its maximum-likelihood solution is in closed form (:func:`fit_ppca`).

A *linear VAE* is the VAE of this model: a linear decoder with Gaussian noise and
a linear encoder ``q(z|x) = N(V (x - b) , diag(s^2))`` whose variances do not depend
on ``x`` (the exact posterior's covariance does not either). Its expected
reconstruction has a closed form, so its ELBO is exact (:meth:`LinearVAE.elbo_terms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aecourse.models.vae import VAE

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class PPCA:
    """A probabilistic-PCA model ``x = W z + mu + noise`` (float64 throughout).

    Attributes:
        W: loading matrix, shape ``(D, M)``.
        mu: mean, shape ``(D,)``.
        sigma2: the noise variance ``sigma^2`` (a float > 0).
    """

    W: torch.Tensor
    mu: torch.Tensor
    sigma2: float

    def __post_init__(self):
        if self.W.ndim != 2 or self.mu.shape != (self.W.shape[0],):
            raise ValueError(f"W must be (D, M) and mu (D,); got {tuple(self.W.shape)} and {tuple(self.mu.shape)}")
        if not self.sigma2 > 0:
            raise ValueError(f"sigma2 must be positive, got {self.sigma2}")

    @property
    def D(self) -> int:
        return self.W.shape[0]

    @property
    def M(self) -> int:
        return self.W.shape[1]

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1).to(torch.float64)
        if x.shape[1] != self.D:
            raise ValueError(f"this model is for vectors of length {self.D}, got inputs of shape {tuple(x.shape)}")
        return x - self.mu

    def _m(self) -> torch.Tensor:
        """``A = W^T W + sigma^2 I``, the M x M matrix of every closed form."""
        return self.W.T @ self.W + self.sigma2 * torch.eye(self.M, dtype=torch.float64)

    def covariance(self) -> torch.Tensor:
        """The marginal covariance ``C = W W^T + sigma^2 I`` (D x D)."""
        return self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=torch.float64)

    def log_prob(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Exact ``log p(x)`` per example (nats), through the M x M matrix (Woodbury), not the D x D one."""
        m = self._m()
        chol = torch.linalg.cholesky(m)
        logdet_c = (self.D - self.M) * math.log(self.sigma2) + 2 * torch.log(torch.diagonal(chol)).sum()
        out = []
        for start in range(0, len(x), chunk):  # in chunks: no float64 copy of all the data at once
            xc = self._x(x[start:start + chunk])
            proj = torch.cholesky_solve((xc @ self.W).T, chol).T                 # A^{-1} W^T x, per row
            quad = ((xc**2).sum(1) - (xc @ self.W * proj).sum(1)) / self.sigma2  # x^T C^{-1} x
            out.append(-0.5 * (self.D * LOG_2PI + logdet_c + quad))
        return torch.cat(out)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact posterior ``p(z|x) = N(A^{-1} W^T (x - mu), sigma^2 A^{-1})``: means (N, M), covariance (M, M)."""
        m_inv = torch.linalg.inv(self._m())
        return self._x(x) @ self.W @ m_inv.T, self.sigma2 * m_inv

    def elbo(self, x: torch.Tensor, q_mean: torch.Tensor, q_cov: torch.Tensor) -> torch.Tensor:
        """The ELBO of a Gaussian ``q(z) = N(q_mean, q_cov)`` for each example, in closed form.

        ``E_q log p(x|z) - KL(q || N(0, I))`` with
        ``E_q log p(x|z) = -D/2 log(2 pi sigma^2) - (||x - mu - W m||^2 + tr(W S W^T)) / (2 sigma^2)``.
        ``q_mean`` is (N, M); ``q_cov`` is (M, M) (shared) or (N, M, M).
        """
        xc = self._x(x)
        q_mean = q_mean.to(torch.float64).reshape(len(xc), self.M)
        q_cov = q_cov.to(torch.float64).expand(len(xc), self.M, self.M)
        resid = ((xc - q_mean @ self.W.T) ** 2).sum(1)
        trace = torch.einsum("dm,nmk,dk->n", self.W, q_cov, self.W)
        expected_loglik = -0.5 * self.D * (LOG_2PI + math.log(self.sigma2)) - (resid + trace) / (2 * self.sigma2)
        kl_prior = 0.5 * (torch.diagonal(q_cov, dim1=1, dim2=2).sum(1) + (q_mean**2).sum(1) - self.M
                          - torch.logdet(q_cov))
        return expected_loglik - kl_prior


def gaussian_kl(m1: torch.Tensor, s1: torch.Tensor, m2: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """``KL(N(m1, s1) || N(m2, s2))`` for full covariances; means (N, M) and covariances (M, M) or (N, M, M)."""
    m1, m2 = m1.to(torch.float64), m2.to(torch.float64)
    n, k = m1.shape
    s1 = s1.to(torch.float64).expand(n, k, k)
    s2 = s2.to(torch.float64).expand(n, k, k)
    s2_inv = torch.linalg.inv(s2)
    diff = (m2 - m1).unsqueeze(-1)
    return 0.5 * (torch.einsum("nij,nji->n", s2_inv, s1) + (diff.transpose(1, 2) @ s2_inv @ diff).reshape(n)
                  - k + torch.logdet(s2) - torch.logdet(s1))


def data_covariance(x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the covariance (normalised by N) of the rows of ``x``, accumulated in float64.

    The rows are processed in chunks, so 60,000 images need no float64 copy of the data.
    """
    flat = x.reshape(len(x), -1)
    n, d = flat.shape
    total = torch.zeros(d, dtype=torch.float64)
    for start in range(0, n, chunk):
        total += flat[start:start + chunk].to(torch.float64).sum(0)
    mean = total / n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, chunk):
        xc = flat[start:start + chunk].to(torch.float64) - mean
        cov += xc.T @ xc
    return mean, cov / n


def fit_ppca(x: torch.Tensor | None, M: int, sigma2: float | None = None, *,
             moments: tuple[torch.Tensor, torch.Tensor] | None = None) -> PPCA:
    """The maximum-likelihood probabilistic PCA of the rows of ``x`` (Tipping & Bishop 1999).

    With eigenvalues ``l_1 >= ... >= l_D`` and eigenvectors ``U`` of the data covariance:
    ``mu`` is the data mean, ``sigma^2 = mean(l_{M+1}, ..., l_D)`` and
    ``W = U_M (L_M - sigma^2 I)^{1/2}`` (up to a rotation ``R`` on the right, which does not
    change ``p(x)``). If ``sigma2`` is given it is held fixed, and directions with
    ``l_i <= sigma^2`` get a zero column: the model switches them off.
    ``moments = data_covariance(x)`` may be passed instead of ``x`` to reuse them.
    """
    if moments is None:
        if x is None:
            raise ValueError("pass the data x or their moments=(mean, covariance)")
        moments = data_covariance(x)
    mean, cov = moments
    D = cov.shape[0]
    if not 1 <= M < D:
        raise ValueError(f"M must satisfy 1 <= M < D = {D}, got {M}")
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    s2 = float(evals[M:].mean()) if sigma2 is None else float(sigma2)
    if not s2 > 0:
        raise ValueError("the discarded eigenvalues are all zero, so the ML noise variance is 0; "
                         "use a smaller M or pass sigma2")
    W = evecs[:, :M] * (evals[:M] - s2).clamp_min(0.0).sqrt()
    return PPCA(W, mean, s2)


def ppca_max_log_likelihood(x: torch.Tensor, M: int) -> float:
    """The maximised mean log-likelihood per example, ``-1/2 (D log 2 pi + log|C| + tr(C^{-1} S))``."""
    return float(fit_ppca(x, M).log_prob(x).mean())


class LinearVAE(VAE):
    """The VAE of probabilistic PCA: ``q(z|x) = N(V x + c, diag(exp(logvar)))``, ``p(x|z) = N(W z + b, sigma^2 I)``.

    The encoder's variances are parameters shared by all inputs, as the exact posterior's
    are. ``sigma`` is learned unless ``sigma`` is given (then it stays fixed).
    """

    def __init__(self, input_dim: int, code_dim: int, sigma: float | None = None):
        super().__init__((input_dim,), code_dim, likelihood="gaussian",
                         encoder=nn.Linear(input_dim, code_dim), decoder=nn.Linear(code_dim, input_dim))
        with torch.no_grad():  # small decoder columns: start near "everything collapsed", not at ||w_j||^2 ~ D/(3M)
            self.decoder.weight.mul_(0.1)
        self.logvar = nn.Parameter(torch.zeros(code_dim))
        self.learn_sigma = sigma is None
        log_sigma = torch.zeros(()) if sigma is None else torch.tensor(math.log(sigma))
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        mu = self.encoder(self._flat(x))
        return mu, self.logvar.expand_as(mu)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact per-example reconstruction term ``-E_q log p(x|z)`` and KL, as tensors (N,).

        ``E_q ||x - W z - b||^2 = ||x - W m - b||^2 + sum_j s_j^2 ||w_j||^2`` for ``q = N(m, diag(s^2))``.
        """
        flat = self._flat(x)
        mu, logvar = self.encode(flat)
        W = self.decoder.weight
        resid = ((flat - self.decoder(mu)) ** 2).sum(1) + (logvar.exp() * (W**2).sum(0)).sum(1)
        var = torch.exp(2 * self.log_sigma)
        rec = resid / (2 * var) + 0.5 * self.input_dim * (LOG_2PI + 2 * self.log_sigma)
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1)
        return {"reconstruction": rec, "kl": kl}

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """The exact ELBO of each example (nats), computed in chunks without gradients."""
        out = []
        for start in range(0, len(x), chunk):
            t = self.elbo_terms(x[start:start + chunk])
            out.append(-(t["reconstruction"] + t["kl"]))
        return torch.cat(out)

    def posterior_kl_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over ``x`` of ``KL(q(z_j|x) || N(0, 1))`` for each latent dimension ``j``: 0 means collapsed."""
        with torch.no_grad():
            mu, logvar = self.encode(x)
            return (0.5 * (mu**2 + logvar.exp() - logvar - 1)).mean(0)
