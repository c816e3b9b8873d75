"""The shape every autoencoder in the course shares: ``decode(encode(x))``."""

from __future__ import annotations

import torch
from torch import nn


class Autoencoder(nn.Module):
    """An encoder and a decoder; ``forward(x)`` is the reconstruction ``decode(encode(x))``.

    Subclasses set ``self.encoder`` and ``self.decoder``. Images of shape
    ``(N, 1, 28, 28)`` and flat vectors ``(N, 784)`` are both accepted: the model
    reshapes to what its layers need and returns the input's shape.
    """

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, input_shape: tuple[int, ...]):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_dim = 1
        for s in self.input_shape:
            self.input_dim *= s

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != self.input_shape and x.shape[1:] != (self.input_dim,):
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}) "
                f"or (N, {self.input_dim}), got {tuple(x.shape)}"
            )
        return x.reshape(len(x), self.input_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``z`` of each input."""
        return self.encoder(self._flat(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions from codes, shaped like the inputs ``(N, *input_shape)``."""
        return self.decoder(z).reshape(len(z), *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
