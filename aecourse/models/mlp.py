"""A fully connected (MLP) autoencoder: the workhorse of the early chapters."""

from __future__ import annotations

from torch import nn

from aecourse.models.base import Autoencoder


def _stack(sizes: list[int], final: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class MLPAutoencoder(Autoencoder):
    """``input -> hidden... -> code -> ...hidden reversed -> input``, ReLU in between.

    The code layer is linear (no activation), and the output passes through a
    sigmoid so reconstructions lie in [0, 1] like the pixels.

    Args:
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        code_dim: size of the bottleneck.
        hidden: widths of the encoder's hidden layers (the decoder mirrors them).
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), code_dim: int = 16,
                 hidden: tuple[int, ...] = (256, 64), sigmoid_output: bool = True):
        super().__init__(input_shape)
        if code_dim < 1:
            raise ValueError(f"code_dim must be at least 1, got {code_dim}")
        self.code_dim = code_dim
        sizes = [self.input_dim, *hidden, code_dim]
        self.encoder = _stack(sizes, final=None)
        self.decoder = _stack(sizes[::-1], final=nn.Sigmoid() if sigmoid_output else None)
