"""Figures in one consistent style, readable on light and dark page themes.

Figures have an opaque white background (a transparent one would put dark
text on a dark page) and use a colour-blind-safe palette.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.frameon": False,
    "image.cmap": "gray",
    "font.size": 10,
}


def use_style() -> None:
    """Apply the course's matplotlib style (the set-up cell calls this)."""
    mpl.rcParams.update(STYLE)


def _as_images(x: torch.Tensor | np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if shape is not None:
        return a.reshape(len(a), *shape)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ValueError(f"image grids take one channel, got {a.shape[1]}")
        return a[:, 0]
    if a.ndim == 3:
        return a
    if a.ndim == 2:
        side = int(round(np.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            raise ValueError(f"cannot show vectors of length {a.shape[1]} as square images; pass shape=")
        return a.reshape(len(a), side, side)
    raise ValueError(f"cannot show an array of shape {a.shape} as images")


def image_rows(rows: Mapping[str, torch.Tensor | np.ndarray], n: int = 10, *, shape=None,
               vmin: float | None = 0.0, vmax: float | None = 1.0, cmap: str = "gray",
               title: str | None = None, scale: float = 1.0):
    """A grid with one labelled row per entry, e.g. ``{"original": x, "reconstruction": r}``.

    Pass ``vmin=vmax=None`` to scale each image to its own range (for weights).
    """
    if not rows:
        raise ValueError("image_rows needs at least one row")
    arrays = {k: _as_images(v, shape)[:n] for k, v in rows.items()}
    ncols = max(len(a) for a in arrays.values())
    fig, axes = plt.subplots(len(arrays), ncols, figsize=(scale * 1.0 * ncols + 1.2, scale * 1.05 * len(arrays)),
                             squeeze=False)
    for r, (label, imgs) in enumerate(arrays.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(imgs):
                ax.imshow(imgs[c], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(x: torch.Tensor | np.ndarray, ncols: int = 10, *, shape=None, vmin: float | None = 0.0,
               vmax: float | None = 1.0, cmap: str = "gray", title: str | None = None, scale: float = 0.8,
               titles: Sequence[str] | None = None):
    """Images laid out in a grid of ``ncols`` columns."""
    imgs = _as_images(x, shape)
    nrows = int(np.ceil(len(imgs) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.4 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for s in ax.spines.values():
            s.set_visible(False)
        if i < len(imgs):
            ax.imshow(imgs[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None and i < len(titles):
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(history, terms: Sequence[str] | None = None, *, ax=None, log: bool = False,
                title: str | None = None, floor: float | None = None, floor_label: str = "optimum"):
    """Per-epoch curves of each term, training solid and validation dashed."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    terms = list(terms or history.train.keys())
    for i, term in enumerate(terms):
        color = PALETTE[i % len(PALETTE)]
        epochs = np.arange(1, len(history.train.get(term, [])) + 1)
        ax.plot(epochs, history.train[term], color=color, label=f"{term} (train)")
        if term in history.val:
            ax.plot(epochs, history.val[term], color=color, ls="--", label=f"{term} (validation)")
    if floor is not None:
        ax.axhline(floor, color="black", lw=1, ls=":", label=floor_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per example")
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def latent_scatter(z: torch.Tensor | np.ndarray, labels=None, *, ax=None, classes: Sequence[str] | None = None,
                   title: str | None = None, s: float = 6, alpha: float = 0.7):
    """A 2-D code, one point per example, coloured by class label."""
    z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_scatter needs codes of shape (N, 2), got {z.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 4.2))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=s, alpha=alpha)
    else:
        labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        cmap = plt.get_cmap("tab10")
        for c in np.unique(labels):
            m = labels == c
            name = classes[int(c)] if classes is not None else str(c)
            ax.scatter(z[m, 0], z[m, 1], s=s, alpha=alpha, color=cmap(int(c) % 10), label=name)
        ax.legend(markerscale=2.5, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------- VAE chapter


def gaussian_ellipse(ax, mean, cov, *, n_std: float = 2.0, label: str | None = None, **kwargs):
    """Draw the ``n_std``-standard-deviation contour of a 2-D Gaussian ``N(mean, cov)`` on ``ax``."""
    from matplotlib.patches import Ellipse

    mean = np.asarray(torch.as_tensor(mean).detach().cpu(), dtype=float).reshape(2)
    cov = np.asarray(torch.as_tensor(cov).detach().cpu(), dtype=float).reshape(2, 2)
    evals, evecs = np.linalg.eigh(cov)
    if evals.min() <= 0:
        raise ValueError(f"the covariance must be positive definite, got eigenvalues {evals}")
    angle = np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1]))
    width, height = 2 * n_std * np.sqrt(evals[::-1])
    kwargs.setdefault("fill", False)
    kwargs.setdefault("lw", 1.8)
    ax.add_patch(Ellipse(mean, width, height, angle=angle, label=label, **kwargs))
    return ax


def decoded_grid(decode, *, n: int = 15, lim: float = 2.5, title: str | None = None, scale: float = 0.45):
    """Decode an ``n x n`` grid of 2-D codes over ``[-lim, lim]^2`` and show the images as one mosaic.

    ``decode(z)`` maps codes ``(n*n, 2)`` to images ``(n*n, 1, H, W)`` (or ``(n*n, H*W)`` square).
    The vertical axis shows ``z_2`` increasing upwards, as in a scatter plot of the codes.
    """
    ticks = torch.linspace(-lim, lim, n)
    z1, z2 = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    with torch.no_grad():
        imgs = _as_images(decode(z))
    h, w = imgs.shape[1:]
    mosaic = imgs.reshape(n, n, h, w).transpose(0, 2, 1, 3).reshape(n * h, n * w)
    fig, ax = plt.subplots(figsize=(scale * n, scale * n))
    half = lim / (n - 1) if n > 1 else 0.5  # each image is centred on its code
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, extent=(-lim - half, lim + half, -lim - half, lim + half),
              interpolation="nearest")
    ax.grid(False)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return fig


def table(headers: Sequence[str], rows: Sequence[Sequence], floatfmt: str = ".3f"):
    """A table of computed values for a notebook output (Markdown; numbers formatted with ``floatfmt``)."""
    from IPython.display import Markdown

    def fmt(v):
        if isinstance(v, torch.Tensor):
            v = v.item()
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))
