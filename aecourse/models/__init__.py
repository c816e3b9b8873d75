"""Models: one short module per family, in the order the chapters meet them.

Each is a small diff over the one before: a linear autoencoder, then deeper
(MLP, convolutional) ones; a sparse autoencoder is an overcomplete one plus a
penalty; a denoising one is any of them plus a corruption; a masked one drops
tokens; a VAE's encoder outputs a distribution.
"""

from aecourse.models.base import Autoencoder, n_parameters
from aecourse.models.conv import ConvAutoencoder
from aecourse.models.denoising import DenoisingMLP
from aecourse.models.linear import LinearAutoencoder
from aecourse.models.masked import MaskedAutoencoder
from aecourse.models.mlp import MLPAutoencoder
from aecourse.models.ppca import PPCA, LinearVAE, fit_ppca
from aecourse.models.sparse import SparseAutoencoder, TopKAutoencoder
from aecourse.models.vae import VAE

__all__ = [
    "Autoencoder", "n_parameters",
    "LinearAutoencoder", "MLPAutoencoder", "ConvAutoencoder",
    "SparseAutoencoder", "TopKAutoencoder",
    "DenoisingMLP", "MaskedAutoencoder",
    "VAE", "PPCA", "LinearVAE", "fit_ppca",
]
