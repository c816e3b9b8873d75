"""Data: image data sets as in-memory tensors, and 2-D distributions with known densities."""

from aecourse.data.images import (
    DATASETS,
    DataUnavailableError,
    ImageData,
    digits_to_28,
    load_digits_data,
    load_images,
    standin_data,
)
from aecourse.data.sprites import SHAPES, Sprites, make_sprites, render_sprite
from aecourse.data.toy2d import GaussianMixture2D, grid, ring_mixture

__all__ = [
    "DATASETS", "DataUnavailableError", "ImageData", "digits_to_28", "load_digits_data",
    "load_images", "standin_data", "GaussianMixture2D", "grid", "ring_mixture",
    "SHAPES", "Sprites", "make_sprites", "render_sprite",
]
