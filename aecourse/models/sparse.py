"""Sparse autoencoders: one hidden layer, wider than the input, read as a dictionary.

The model is the plain autoencoder of the first chapters with one hidden layer,

    z = a(W_e x + b_e),        x_hat = W_d z + b_d = b_d + sum_j z_j d_j,

where ``a`` is ReLU (or a sigmoid, for the KL penalty). The decoder is linear, so a
reconstruction is the bias plus a weighted sum of the decoder's columns ``d_j``,
the *features* or *dictionary atoms*; the code ``z`` says how much of each is used.

What makes it *sparse* is not the model: it is the objective
(:class:`aecourse.objectives.L1Sparsity`, :class:`aecourse.objectives.KLSparsity`)
or, in :class:`TopKAutoencoder`, one extra line in the encoder that keeps only the
``k`` largest activations of each example.

Each decoder column has unit length. Without that constraint a penalty on the size
of ``z`` could be dodged for free: halve ``z`` and double ``W_d`` and the
reconstruction is unchanged while the L1 penalty halves (see the chapter).
"""

from __future__ import annotations

import torch
from torch import nn

from aecourse.models.base import Autoencoder

ACTIVATIONS = ("relu", "sigmoid")


class UnitNormLinear(nn.Module):
    """A linear map ``z -> W z + b`` whose columns ``W[:, j]`` always have unit length.

    The free parameter is ``v``; the weight used is ``v`` with each column divided by
    its norm, so gradient descent can change the directions of the columns but not
    their lengths.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.v = nn.Parameter(torch.randn(out_features, in_features) / out_features**0.5)
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def weight(self) -> torch.Tensor:
        """The weight in use, shape ``(out_features, in_features)``, columns of unit norm."""
        return self.v * torch.rsqrt(self.v.pow(2).sum(dim=0, keepdim=True).clamp_min(1e-24))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(z, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.v.shape[1]}, out_features={self.v.shape[0]}, unit-norm columns"


class SparseAutoencoder(Autoencoder):
    """An overcomplete one-hidden-layer autoencoder with a linear, unit-norm decoder.

    Args:
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        n_hidden: number of hidden units (the code size ``M``); "overcomplete" means
            ``n_hidden`` larger than the input dimension (784 for 28x28 images).
        activation: ``"relu"`` (codes >= 0 with exact zeros; for L1 and top-k) or
            ``"sigmoid"`` (codes in (0, 1); needed by the KL penalty).
        unit_norm_decoder: keep every decoder column at unit length (default). Turn it
            off only to see why it is there.

    ``encode`` returns the code ``(N, n_hidden)``; ``decode`` returns images; the
    decoder columns are :meth:`features`.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), n_hidden: int = 1024,
                 activation: str = "relu", unit_norm_decoder: bool = True):
        super().__init__(input_shape)
        if not isinstance(n_hidden, int) or n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive int, got {n_hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.n_hidden = n_hidden
        self.code_dim = n_hidden
        self.activation = activation
        self.unit_norm_decoder = unit_norm_decoder
        decoder = UnitNormLinear(n_hidden, self.input_dim) if unit_norm_decoder else nn.Linear(n_hidden,
                                                                                             self.input_dim)
        # Start the encoder as the decoder's transpose, a common initialisation for sparse
        # dictionaries: each unit first responds to inputs that look like its own feature.
        encoder_linear = nn.Linear(self.input_dim, n_hidden)
        with torch.no_grad():
            w = decoder.weight if unit_norm_decoder else decoder.weight / decoder.weight.norm(dim=0, keepdim=True)
            encoder_linear.weight.copy_(w.T)
            encoder_linear.bias.zero_()
        self.encoder = nn.Sequential(encoder_linear, nn.ReLU() if activation == "relu" else nn.Sigmoid())
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``z = a(W_e (x - b_d) + b_e)``, shape ``(N, n_hidden)``.

        The decoder's bias ``b_d`` is subtracted first, so units describe how an input
        differs from the typical input rather than the input itself.
        """
        return self.encoder(self._flat(x) - self.decoder.bias)

    def init_decoder_bias(self, x: torch.Tensor) -> "SparseAutoencoder":
        """Set the decoder's bias ``b_d`` to the mean of the data ``x`` (a good start for training);
        returns the model."""
        with torch.no_grad():
            self.decoder.bias.copy_(self._flat(x).mean(dim=0).to(self.decoder.bias))
        return self

    def features(self) -> torch.Tensor:
        """The decoder's columns as rows, shape ``(n_hidden, input_dim)``: feature ``j`` is what
        unit ``j`` adds to the reconstruction per unit of activation."""
        return self.decoder.weight.detach().T.clone()


class TopKAutoencoder(SparseAutoencoder):
    """A k-sparse autoencoder: the encoder keeps each example's ``k`` largest activations.

    The code is ``z = TopK(ReLU(W_e x + b_e))``: all but the ``k`` largest entries of each
    row are set to zero (Makhzani & Frey 2014; Gao et al. 2024). Sparsity is now a
    property of the architecture, fixed exactly at ``k`` or fewer active units per
    example, and it is trained with the plain reconstruction objective.
    """

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), n_hidden: int = 1024, k: int = 32,
                 unit_norm_decoder: bool = True):
        super().__init__(input_shape, n_hidden, activation="relu", unit_norm_decoder=unit_norm_decoder)
        if not isinstance(k, int) or not 1 <= k <= n_hidden:
            raise ValueError(f"k must be an int between 1 and n_hidden={n_hidden}, got {k!r}")
        self.k = k

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return top_k(super().encode(x), self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"


def top_k(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row of ``z`` (shape ``(N, M)``), zero the rest.

    Gradients flow to the kept entries only.
    """
    if z.dim() != 2:
        raise ValueError(f"top_k expects codes of shape (N, M), got {tuple(z.shape)}")
    if not 1 <= k <= z.shape[1]:
        raise ValueError(f"k must be between 1 and the code size {z.shape[1]}, got {k}")
    values, indices = z.topk(k, dim=1)
    return torch.zeros_like(z).scatter(1, indices, values)
