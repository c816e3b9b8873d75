"""Sprites: small images of simple shapes with known factors of variation.

In the spirit of dSprites (Matthey et al., 2017), every image shows one white
shape on a black background, and is fully determined by five *factors*:

========  ==============================================================
shape     square, ellipse or heart (a categorical factor)
scale     the size of the shape
rotation  its orientation, in degrees
x, y      the position of its centre
========  ==============================================================

The data set is every combination of the factor values on small grids, so the
factors are independent and uniformly distributed, which is what a
disentanglement metric such as MIG assumes. Nothing is downloaded: the images
are rendered with NumPy, anti-aliased by supersampling (each pixel is the
fraction of a ``supersample x supersample`` grid of points inside the shape), and
the same call gives the same bytes on every machine.

Rendering is quick because positions are whole pixels: each (shape, scale,
rotation) is rendered once, centred, and copied to every position.

>>> sprites = make_sprites()
>>> sprites.images.shape, sprites.factors.shape
(torch.Size([4608, 1, 28, 28]), torch.Size([4608, 5]))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

#: The shapes that can be drawn, in the order of the ``shape`` factor's values.
SHAPES = ("square", "ellipse", "heart")

#: The names of the factors, in the order of the columns of ``Sprites.factors``.
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")


@dataclass(frozen=True)
class Sprites:
    """A sprites data set: images and the factors that generated each of them.

    Attributes:
        images: float32 images, shape ``(N, 1, size, size)``, values in ``[0, 1]``.
        factors: int64 index of each factor's value, shape ``(N, 5)``; column ``k``
            is factor ``FACTOR_NAMES[k]``, and ``factors[n, k] = i`` means image
            ``n`` has value ``factor_values[name][i]``.
        factor_values: for each factor name, the tuple of its possible values
            (shape names; scales relative to the largest; rotations in degrees;
            positions in pixels from the image centre).
    """

    images: torch.Tensor
    factors: torch.Tensor
    factor_values: dict[str, tuple] = field(default_factory=dict)

    @property
    def factor_names(self) -> tuple[str, ...]:
        return FACTOR_NAMES

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """How many values each factor takes, e.g. ``(3, 4, 6, 8, 8)``."""
        return tuple(len(self.factor_values[k]) for k in FACTOR_NAMES)

    @property
    def values(self) -> torch.Tensor:
        """The numerical value of each factor (the shape as its index), float64, shape ``(N, 5)``."""
        cols = []
        for k, name in enumerate(FACTOR_NAMES):
            vals = self.factor_values[name]
            table = torch.arange(len(vals), dtype=torch.float64) if name == "shape" else \
                torch.tensor(vals, dtype=torch.float64)
            cols.append(table[self.factors[:, k]])
        return torch.stack(cols, dim=1)

    def __len__(self) -> int:
        return len(self.images)

    def index_of(self, **factors: int) -> int:
        """The row of the image with the given factor *indices* (all five must be given),
        e.g. ``sprites.index_of(shape=2, scale=3, rotation=0, x=4, y=4)``."""
        missing = [k for k in FACTOR_NAMES if k not in factors]
        unknown = [k for k in factors if k not in FACTOR_NAMES]
        if missing or unknown:
            raise ValueError(f"give an index for each of {FACTOR_NAMES}; missing {missing}, unknown {unknown}")
        target = torch.tensor([factors[k] for k in FACTOR_NAMES])
        hits = (self.factors == target).all(dim=1).nonzero()
        if len(hits) == 0:
            raise ValueError(f"no image has factor indices {factors}; sizes are {self.factor_sizes}")
        return int(hits[0])

    def split(self, test_fraction: float = 0.1, seed: int = 0) -> tuple["Sprites", "Sprites"]:
        """A random train/test split (the same for the same seed)."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=g)
        n_test = max(1, round(test_fraction * len(self)))
        return self.subset(order[n_test:]), self.subset(order[:n_test])

    def subset(self, index: torch.Tensor) -> "Sprites":
        """The images (and factors) at ``index``."""
        return Sprites(self.images[index], self.factors[index], dict(self.factor_values))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {n}" for k, n in zip(FACTOR_NAMES, self.factor_sizes))
        return f"Sprites({len(self):,} images of {tuple(self.images.shape[2:])} pixels; factors: {sizes})"


# --------------------------------------------------------------------------- rendering


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) of the shape's own frame (unit size, v pointing up) are inside it."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if shape == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0
    if shape == "heart":
        # the classical heart curve (x^2 + y^2 - 1)^3 = x^2 y^3, centred and fitted to the unit disc
        x, y = u * 1.25, v * 1.25 + 0.15
        return (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0.0
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def render_sprite(shape: str, scale: float, rotation: float, size: int = 28, supersample: int = 4,
                  radius: float = 5.5) -> np.ndarray:
    """One centred sprite as a float64 array ``(size, size)`` of pixel coverages in ``[0, 1]``.

    Args:
        shape: one of :data:`SHAPES`.
        scale: size relative to the largest (the shape fits a disc of ``scale * radius`` pixels).
        rotation: anticlockwise, in degrees.
        size: the image's side in pixels.
        supersample: each pixel averages ``supersample**2`` points (anti-aliasing).
        radius: the radius, in pixels, of the disc that holds a shape of scale 1.
    """
    if size < 8 or supersample < 1 or scale <= 0 or radius <= 0:
        raise ValueError(f"need size >= 8, supersample >= 1 and positive scale and radius; got size={size}, "
                         f"supersample={supersample}, scale={scale}, radius={radius}")
    n = size * supersample
    # sample points at sub-pixel centres, in pixels from the image centre; y points up
    t = (np.arange(n, dtype=np.float64) + 0.5) / supersample - size / 2
    px, py = np.meshgrid(t, -t)
    a = np.deg2rad(rotation)
    c, s = np.cos(a), np.sin(a)
    r = scale * radius
    u = (c * px + s * py) / r  # rotate the points by -rotation, i.e. the shape by +rotation
    v = (-s * px + c * py) / r
    mask = _inside(shape, u, v).astype(np.float64)
    return mask.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move an image by whole pixels (dx right, dy up), filling with zeros."""
    out = np.zeros_like(img)
    h, w = img.shape
    rows = slice(max(0, -dy), min(h, h - dy))
    cols = slice(max(0, dx), min(w, w + dx))
    src_rows = slice(max(0, dy), min(h, h + dy))
    src_cols = slice(max(0, -dx), min(w, w - dx))
    out[rows, cols] = img[src_rows, src_cols]
    if out.sum() < img.sum() - 1e-9:
        raise ValueError(f"a shift of ({dx}, {dy}) pixels moves part of the sprite out of the image; "
                         "use fewer or closer positions, or smaller scales")
    return out


@lru_cache(maxsize=4)
def _make(size, n_scales, n_rotations, n_positions, supersample, max_rotation, position_step):
    scales = tuple(float(s) for s in np.linspace(0.5, 1.0, n_scales))
    rotations = tuple(float(r) for r in np.linspace(0.0, max_rotation, n_rotations, endpoint=False))
    offsets = tuple(int(o) for o in (np.arange(n_positions) - (n_positions - 1) / 2) * position_step)
    if any(o != (i - (n_positions - 1) / 2) * position_step for i, o in enumerate(offsets)):
        raise ValueError(f"positions must be whole pixels: with {n_positions} positions use an even "
                         f"position_step (got {position_step})")
    # the 4 corners of the image's centre are shifted by half a pixel when size is even: fine,
    # every sprite is centred on the same point of the pixel grid.
    images = []
    factors = []
    for i_shape, i_scale, i_rot in itertools.product(range(len(SHAPES)), range(n_scales), range(n_rotations)):
        template = render_sprite(SHAPES[i_shape], scales[i_scale], rotations[i_rot], size, supersample)
        for i_x, i_y in itertools.product(range(n_positions), range(n_positions)):
            images.append(_shift(template, offsets[i_x], offsets[i_y]))
            factors.append((i_shape, i_scale, i_rot, i_x, i_y))
    x = torch.from_numpy(np.stack(images).astype(np.float32)).unsqueeze(1)
    f = torch.tensor(factors, dtype=torch.int64)
    values = {"shape": SHAPES, "scale": scales, "rotation": rotations, "x": offsets, "y": offsets}
    return x, f, values


def make_sprites(size: int = 28, n_scales: int = 4, n_rotations: int = 6, n_positions: int = 8, *,
                 supersample: int = 4, max_rotation: float = 90.0, position_step: int = 2) -> Sprites:
    """Every combination of shape, scale, rotation, x and y: ``3 * n_scales * n_rotations * n_positions**2`` images.

    Scales are evenly spaced in ``[0.5, 1]``; rotations are evenly spaced in
    ``[0, max_rotation)`` degrees (90 by default: a square turned by 90 degrees looks
    the same as an unturned one, so a larger range would make the rotation of a square
    ambiguous); the centre moves by ``position_step`` pixels on an ``n_positions x
    n_positions`` grid around the image centre. The rows are ordered with the last
    factor (y) changing fastest. Deterministic: the same arguments give the same bytes.

    The result is cached in memory; the returned tensors are copies, safe to modify.
    """
    for name, n in (("n_scales", n_scales), ("n_rotations", n_rotations), ("n_positions", n_positions)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    extent = (n_positions - 1) / 2 * position_step + 5.5 * np.sqrt(2) * 0.75 + 1
    if extent > size / 2:
        raise ValueError(f"{n_positions} positions {position_step} pixels apart do not fit a {size}-pixel image; "
                         "use fewer positions, a smaller position_step or a larger size")
    x, f, values = _make(size, n_scales, n_rotations, n_positions, supersample, float(max_rotation),
                         int(position_step))
    return Sprites(x.clone(), f.clone(), dict(values))
