"""Models: one short module per family; each is a small diff over the one before."""

from aecourse.models.base import Autoencoder, n_parameters
from aecourse.models.mlp import MLPAutoencoder

__all__ = ["Autoencoder", "n_parameters", "MLPAutoencoder"]
from aecourse.models.vae import VAE  # noqa: E402

__all__ += ["VAE"]
from aecourse.models.ppca import PPCA, LinearVAE, fit_ppca  # noqa: E402

__all__ += ["PPCA", "LinearVAE", "fit_ppca"]
from aecourse.models.conv import ConvAutoencoder  # noqa: E402

__all__ += ["ConvAutoencoder"]
from aecourse.models.sparse import SparseAutoencoder, TopKAutoencoder  # noqa: E402

__all__ += ["SparseAutoencoder", "TopKAutoencoder"]
from aecourse.models.linear import LinearAutoencoder  # noqa: E402

__all__ += ["LinearAutoencoder"]
from aecourse.models.masked import MaskedAutoencoder  # noqa: E402

__all__ += ["MaskedAutoencoder"]
from aecourse.models.denoising import DenoisingMLP  # noqa: E402

__all__ += ["DenoisingMLP"]
