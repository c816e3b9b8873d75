"""The variational autoencoder: an autoencoder whose encoder outputs a distribution.

Compared with :class:`~aecourse.models.mlp.MLPAutoencoder` three things change:

* the encoder outputs ``2 * code_dim`` numbers, the mean ``mu`` and the
  log-variance ``logvar`` of a diagonal Gaussian ``q_phi(z|x)``;
* a code is *sampled* from it with the reparameterisation trick,
  ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``;
* the decoder outputs the parameter of a likelihood ``p_theta(x|z)``: the
  logits of independent Bernoulli pixels, or the mean of a Gaussian.

The objective (the negative ELBO) is :class:`aecourse.objectives.ELBO`.
"""

from __future__ import annotations

import torch
from torch import nn

from aecourse.models.base import Autoencoder
from aecourse.models.mlp import _stack

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Autoencoder):
    """A VAE with MLP encoder and decoder (or any encoder/decoder you pass in).

    Args:
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        code_dim: size ``M`` of the latent variable ``z``.
        hidden: widths of the encoder's hidden layers (the decoder mirrors them).
        likelihood: ``"bernoulli"`` (decoder outputs logits) or ``"gaussian"``
            (decoder outputs the mean).
        encoder: optional module mapping flat inputs ``(N, D)`` to ``(N, 2 * code_dim)``
            (means first, then log-variances).
        decoder: optional module mapping ``(N, code_dim)`` to ``(N, D)`` (or the input's shape).

    ``forward(x)`` is deterministic: it decodes the posterior mean ``mu`` and returns the
    mean of ``p(x|z)`` (the sigmoid of the logits for Bernoulli), so a VAE can be used
    wherever an autoencoder is.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), code_dim: int = 16,
                 hidden: tuple[int, ...] = (256, 64), likelihood: str = "bernoulli",
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None):
        super().__init__(input_shape)
        if code_dim < 1:
            raise ValueError(f"code_dim must be at least 1, got {code_dim}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.code_dim = int(code_dim)
        self.likelihood = likelihood
        sizes = [self.input_dim, *hidden, self.code_dim]
        self.encoder = encoder if encoder is not None else _stack([*sizes[:-1], 2 * self.code_dim], final=None)
        self.decoder = decoder if decoder is not None else _stack(sizes[::-1], final=None)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """The mean and log-variance of ``q(z|x)``, each of shape ``(N, code_dim)``."""
        h = self.encoder(self._flat(x))
        if h.ndim != 2 or h.shape[1] != 2 * self.code_dim:
            raise ValueError(f"the encoder must output (N, 2 * code_dim) = (N, {2 * self.code_dim}) numbers "
                             f"(means, then log-variances); it gave {tuple(h.shape)}")
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """A sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, differentiable in ``mu`` and ``logvar``."""
        if generator is None:
            eps = torch.randn_like(mu)
        else:  # a seeded CPU generator: draw on the CPU, then move
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameter (logits or Gaussian mean), shaped like the inputs."""
        return self.decoder(z).reshape(len(z), *self.input_shape)

    def mean(self, decoder_output: torch.Tensor) -> torch.Tensor:
        """The mean of ``p(x|z)`` from the decoder's output (sigmoid of logits for Bernoulli)."""
        return torch.sigmoid(decoder_output) if self.likelihood == "bernoulli" else decoder_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction mean at the posterior mean: ``E[x | z = mu(x)]``, in ``x``'s shape."""
        mu, _ = self.encode(x)
        return self.mean(self.decode(mu)).reshape(x.shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from the model: ``z ~ N(0, I)``, then the mean of ``p(x|z)``.

        (The mean, not a draw of independent pixel noise, is what one shows as a sample.)
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        dev = next(self.parameters()).device
        z = torch.randn(n, self.code_dim, generator=generator).to(dev)
        return self.mean(self.decode(z))
