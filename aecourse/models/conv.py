"""A convolutional autoencoder: the MLP autoencoder with its outer layers made convolutional.

The encoder halves the image twice with stride-2 convolutions (28 -> 14 -> 7),
then fully connected layers map the feature maps to the code. The decoder mirrors
it: fully connected layers back to feature maps, then two stride-2 transposed
convolutions double the size (7 -> 14 -> 28). The code layer is linear and the
output ends in a sigmoid, exactly as in :class:`aecourse.models.MLPAutoencoder`.

Only the shape arithmetic is new. A convolution with kernel ``k``, stride ``s``
and padding ``p`` maps a side of ``n`` pixels to ``floor((n + 2p - k) / s) + 1``;
a transposed convolution maps ``n`` to ``(n - 1) s - 2p + k + output_padding``.
With ``k = 3, s = 2, p = 1`` the first gives ``ceil(n / 2)`` and the second, with
``output_padding = 1``, gives ``2n``.
"""

from __future__ import annotations

import torch
from torch import nn

from aecourse.models.base import Autoencoder


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side length after ``nn.Conv2d(kernel_size=kernel, stride=stride, padding=padding)``."""
    return (n + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0) -> int:
    """Side length after ``nn.ConvTranspose2d`` with these settings (dilation 1)."""
    return (n - 1) * stride - 2 * padding + kernel + output_padding


class PixelBias(nn.Module):
    """Adds a learned bias to every pixel (a transposed convolution's bias is shared by all pixels).

    It lets the decoder learn the mean image directly, as the last linear layer of an
    MLP decoder does; without it a convolutional decoder starts much more slowly.
    """

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(*shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class ConvAutoencoder(Autoencoder):
    """``image -> conv -> conv -> dense -> code -> dense -> deconv -> deconv -> image``.

    Args:
        input_shape: ``(channels, height, width)`` of one example; height and width
            must be divisible by 4 (two halvings), e.g. ``(1, 28, 28)``.
        code_dim: size of the bottleneck.
        channels: feature maps after the first and the second convolution.
        hidden: width of a fully connected layer between the feature maps and the code
            (in both directions); ``None`` maps the feature maps to the code directly.
        sigmoid_output: end the decoder in a sigmoid (pixels in [0, 1]).
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), code_dim: int = 16,
                 channels: tuple[int, int] = (16, 32), hidden: int | None = 64,
                 sigmoid_output: bool = True):
        super().__init__(input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"ConvAutoencoder needs input_shape=(channels, height, width), got {input_shape}")
        c_in, h, w = self.input_shape
        if h % 4 or w % 4:
            raise ValueError(f"height and width must be divisible by 4 (two stride-2 halvings), got {h}x{w}; "
                             "pad or crop the images")
        if code_dim < 1:
            raise ValueError(f"code_dim must be at least 1, got {code_dim}")
        if len(channels) != 2 or min(channels) < 1:
            raise ValueError(f"channels must be two positive ints, got {channels}")
        if hidden is not None and hidden < 1:
            raise ValueError(f"hidden must be a positive int or None, got {hidden}")
        self.code_dim = code_dim
        c1, c2 = channels
        self.feature_shape = (c2, h // 4, w // 4)
        n_features = c2 * (h // 4) * (w // 4)
        widths = [n_features, *([hidden] if hidden else []), code_dim]  # the fully connected part
        to_code: list[nn.Module] = []
        from_code: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            to_code += [nn.Linear(a, b), nn.ReLU()]
            from_code = [nn.Linear(b, a), nn.ReLU(), *from_code]
        to_code.pop()  # the code itself is linear
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, c1, kernel_size=3, stride=2, padding=1), nn.ReLU(),   # h -> h/2
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1), nn.ReLU(),     # h/2 -> h/4
            nn.Flatten(),
            *to_code,                                                             # ... -> code
        )
        self.decoder = nn.Sequential(
            *from_code,                                                           # code -> ...
            nn.Unflatten(1, self.feature_shape),
            nn.ConvTranspose2d(c2, c1, kernel_size=3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, c_in, kernel_size=3, stride=2, padding=1, output_padding=1, bias=False),
            PixelBias(self.input_shape),
            *([nn.Sigmoid()] if sigmoid_output else []),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each input; images ``(N, C, H, W)`` or flat rows ``(N, C*H*W)``."""
        return self.encoder(self._flat(x).reshape(len(x), *self.input_shape))
