"""The linear autoencoder: encoder ``z = W1 x + b1``, decoder ``x_hat = W2 z + b2``.

It is the MLP autoencoder with no hidden layers, no activations and no output
sigmoid. Its optimum is known in closed form (the principal subspace, by the
Eckart-Young theorem), which makes it the reference point of the course.
"""

from __future__ import annotations

import torch
from torch import nn

from aecourse.models.base import Autoencoder


class LinearAutoencoder(Autoencoder):
    """``x -> W1 x + b1 -> W2 z + b2``, with ``W1`` of shape ``(k, D)`` and ``W2`` of shape ``(D, k)``.

    Args:
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        code_dim: the bottleneck ``k``; must be at least 1 (and is normally less than ``D``).
        bias: whether the encoder and decoder have biases ``b1``, ``b2``.
        init_scale: both weight matrices start with independent ``N(0, init_scale^2 / D)``
            entries and the biases at zero, so the two layers start at the same small
            scale. ``None`` keeps PyTorch's default ``nn.Linear`` initialisation, which
            makes ``W2`` far larger than ``W1`` when ``k`` is small and slows training.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), code_dim: int = 16, bias: bool = True,
                 init_scale: float | None = 0.1):
        super().__init__(input_shape)
        if not isinstance(code_dim, int) or code_dim < 1:
            raise ValueError(f"code_dim must be a positive int, got {code_dim!r}")
        if init_scale is not None and not init_scale > 0:
            raise ValueError(f"init_scale must be positive (or None for PyTorch's default), got {init_scale!r}")
        self.code_dim = code_dim
        self.encoder = nn.Linear(self.input_dim, code_dim, bias=bias)
        self.decoder = nn.Linear(code_dim, self.input_dim, bias=bias)
        if init_scale is not None:
            std = init_scale / self.input_dim ** 0.5
            with torch.no_grad():
                for layer in (self.encoder, self.decoder):
                    layer.weight.normal_(0.0, std)
                    if layer.bias is not None:
                        layer.bias.zero_()

    @property
    def W1(self) -> torch.Tensor:
        """The encoder's weight matrix, shape ``(k, D)`` (a detached copy)."""
        return self.encoder.weight.detach().clone()

    @property
    def W2(self) -> torch.Tensor:
        """The decoder's weight matrix, shape ``(D, k)``; its columns span the code's subspace."""
        return self.decoder.weight.detach().clone()

    def set_weights(self, W1: torch.Tensor, W2: torch.Tensor, mean: torch.Tensor | None = None) -> "LinearAutoencoder":
        """Set ``W1`` and ``W2`` by hand; with ``mean`` given, set the biases so the mean is reconstructed.

        ``b1 = -W1 mean`` and ``b2 = mean``: the code is ``W1 (x - mean)`` and the
        reconstruction ``mean + W2 W1 (x - mean)``, the optimal biases for any weights.
        """
        k, d = self.code_dim, self.input_dim
        if tuple(W1.shape) != (k, d) or tuple(W2.shape) != (d, k):
            raise ValueError(f"expected W1 of shape {(k, d)} and W2 of shape {(d, k)}, "
                             f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
        with torch.no_grad():
            self.encoder.weight.copy_(W1)
            self.decoder.weight.copy_(W2)
            if mean is not None:
                if self.encoder.bias is None or self.decoder.bias is None:
                    raise ValueError("this model has no biases; create it with bias=True to set a mean")
                mean = mean.reshape(-1).to(self.encoder.weight)
                if mean.numel() != d:
                    raise ValueError(f"mean must have {d} entries, got {mean.numel()}")
                self.encoder.bias.copy_(-W1.to(mean) @ mean)
                self.decoder.bias.copy_(mean)
        return self
