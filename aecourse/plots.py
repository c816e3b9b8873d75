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


def _bare(ax) -> None:
    """An axis for one image: no ticks, grid or frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _code_plane_axes(ax, title: str | None):
    """Label the axes of a picture drawn over the 2-D code plane."""
    ax.grid(False)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return ax


def _decoded_mosaic(decode, u: torch.Tensor, v: torch.Tensor) -> np.ndarray:
    """Decode the grid of codes ``(u_j, v_i)`` and tile the images: row ``i``, column ``j``."""
    z1, z2 = torch.meshgrid(u, v, indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    with torch.no_grad():
        imgs = _as_images(decode(z))
    h, w = imgs.shape[1:]
    return imgs.reshape(len(v), len(u), h, w).transpose(0, 2, 1, 3).reshape(len(v) * h, len(u) * w)


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
            _bare(ax)
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
        _bare(ax)
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


def decoded_grid(decode, *, n: int = 15, lim: float = 2.5, ax=None, title: str | None = None,
                 scale: float = 0.45):
    """Decode an ``n x n`` grid of 2-D codes over ``[-lim, lim]^2`` and show the images as one mosaic.

    ``decode(z)`` maps codes ``(n*n, 2)`` to images ``(n*n, 1, H, W)`` (or ``(n*n, H*W)`` square).
    Each image is centred on its code, and ``z_2`` increases upwards, as in a scatter plot of
    the codes. Returns the axes.
    """
    ticks = torch.linspace(-lim, lim, n)
    mosaic = _decoded_mosaic(decode, ticks, ticks.flip(0))
    if ax is None:
        _, ax = plt.subplots(figsize=(scale * n, scale * n))
    edge = lim + (lim / (n - 1) if n > 1 else 0.5)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, extent=(-edge, edge, -edge, edge),
              interpolation="nearest")
    return _code_plane_axes(ax, title)


class Table:
    """Computed values as a table: HTML on the website and in Jupyter, Markdown elsewhere."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence], floatfmt: str = ".3f"):
        self.headers = [str(h) for h in headers]
        self.rows = [[self._fmt(v, floatfmt) for v in row] for row in rows]

    @staticmethod
    def _fmt(v, floatfmt: str) -> str:
        if isinstance(v, torch.Tensor):
            v = v.item()
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    def __repr__(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(self.headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in self.rows]
        return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence], floatfmt: str = ".3f") -> Table:
    """A table of computed values for a notebook output (numbers formatted with ``floatfmt``)."""
    return Table(headers, rows, floatfmt)


# --------------------------------------------------------------------------- β-VAE chapter: traversals, rate and distortion


@torch.no_grad()
def traverse(model, x: torch.Tensor, latent: int, values) -> torch.Tensor:
    """Decode the code of one image ``x`` with latent ``latent`` replaced by each of ``values``.

    The code is the posterior mean ``mu(x)`` of a VAE (``model.encode(x) -> (mu, logvar)``);
    every other latent keeps its value. Returns the decoded means, shape ``(len(values), *x.shape[1:])``.
    """
    shape = tuple(getattr(model, "input_shape", x.shape[1:]))
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if len(x) != 1:
        raise ValueError(f"traverse takes one image, of shape {shape} or (1, *{shape}); got {tuple(x.shape)}")
    x = x.to(next(model.parameters()).device)
    mu, _ = model.encode(x)
    if not 0 <= latent < mu.shape[1]:
        raise ValueError(f"latent must be between 0 and {mu.shape[1] - 1}, got {latent}")
    z = mu.repeat(len(values), 1)
    z[:, latent] = torch.as_tensor(values, dtype=z.dtype, device=z.device)
    out = model.decode(z)
    out = model.mean(out) if hasattr(model, "mean") else out
    return out.reshape(len(values), *x.shape[1:]).cpu()


def image_mosaic(rows, *, ax=None, xlabels=None, title: str | None = None, gap: int = 2,
                 scale: float = 0.55, fontsize: float = 8):
    """Rows of equally sized images drawn as one picture, each row labelled on the left.

    ``rows`` maps a label to images ``(n, 1, H, W)`` (or ``(n, H, W)``); rows may differ in
    length. One ``imshow`` for the whole grid is much faster than one axes per image.
    ``xlabels`` names the columns. Returns the axes.
    """
    arrays = [(str(k), _as_images(v)) for k, v in rows.items()]
    if not arrays:
        raise ValueError("image_mosaic needs at least one row")
    h, w = arrays[0][1].shape[1:]
    if any(a.shape[1:] != (h, w) for _, a in arrays):
        raise ValueError("all images of a mosaic must have the same size")
    ncols = max(len(a) for _, a in arrays)
    canvas = np.ones((len(arrays) * (h + gap) - gap, ncols * (w + gap) - gap))
    for r, (_, a) in enumerate(arrays):
        for c, img in enumerate(a):
            canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    if ax is None:
        _, ax = plt.subplots(figsize=(scale * ncols + 1.2, scale * len(arrays) + (0.5 if title else 0.2)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(arrays))], [k for k, _ in arrays], fontsize=fontsize)
    if xlabels is not None:
        ax.set_xticks([c * (w + gap) + w / 2 for c in range(len(xlabels))], list(xlabels), fontsize=fontsize)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def traversal_grid(model, x: torch.Tensor, latents=None, values=None, *, kl=None, ax=None,
                   title: str | None = None):
    """Latent traversals: one row per latent, one column per value of that latent.

    Args:
        model: a VAE; ``x``: one image.
        latents: which latents to show, in order (default: all).
        values: the values each latent takes (default: 7 values from -2.5 to 2.5).
        kl: optional per-latent average KL (nats) to label each row with.
        ax: optional axes to draw into.
    """
    values = np.linspace(-2.5, 2.5, 7) if values is None else np.asarray(values, dtype=float)
    latents = list(range(model.code_dim)) if latents is None else list(latents)
    if not latents:
        raise ValueError("no latents to traverse")
    rows = {}
    for j in latents:
        label = f"$z_{{{j}}}$" + (f" ({float(kl[j]):.1f} nats)" if kl is not None else "")
        rows[label] = traverse(model, x, j, values)
    ax = image_mosaic(rows, ax=ax, xlabels=[f"{v:+.1f}" for v in values], title=title)
    ax.set_xlabel("value of the latent", fontsize=8)
    return ax


def rate_distortion(rates, distortions, labels=None, *, ax=None, seeds_rates=None, seeds_distortions=None,
                    extra: dict | None = None, elbo_lines: bool = True, title: str | None = None):
    """The rate-distortion plane: rate (KL, nats) across, distortion (reconstruction NLL, nats) up.

    ``rates[i], distortions[i]`` is the mean of the runs at setting ``labels[i]`` (joined by a
    line); ``seeds_rates``/``seeds_distortions`` (settings x seeds) add every run as a faint dot;
    ``extra`` maps a label to ``(rate, distortion)`` for single points drawn as stars. Dotted
    diagonals are lines of equal ``D + R`` (the negative ELBO).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.4, 3.9))
    r, d = np.asarray(rates, dtype=float), np.asarray(distortions, dtype=float)
    if r.shape != d.shape:
        raise ValueError(f"rates and distortions must have the same shape, got {r.shape} and {d.shape}")
    if seeds_rates is not None:
        ax.scatter(np.ravel(seeds_rates), np.ravel(seeds_distortions), s=10, color=PALETTE[0], alpha=0.35,
                   lw=0, label="single runs")
    ax.plot(r, d, "o-", color=PALETTE[0], label="β-VAE (mean over seeds)")
    if labels is not None:
        for ri, di, lab in zip(r, d, labels):
            ax.annotate(str(lab), (ri, di), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for i, (lab, (er, ed)) in enumerate((extra or {}).items()):
        ax.plot([er], [ed], "*", ms=12, color=PALETTE[(i + 3) % len(PALETTE)], label=lab)
    if elbo_lines:
        points = list((extra or {}).values())
        lo = min([float(np.min(r + d))] + [er + ed for er, ed in points])
        xmax = max([float(np.max(r))] + [er for er, _ in points]) * 1.08
        ymin, ymax = ax.get_ylim()
        for level in lo + np.arange(0, 4) * (ymax - ymin) / 3:
            ax.plot([0, xmax], [level, level - xmax], ls=":", color="gray", lw=0.8)
        ax.plot([], [], ls=":", color="gray", lw=0.8, label="equal $D + R$ (−ELBO)")
        ax.set_ylim(ymin, ymax)
        ax.set_xlim(0, xmax)
    ax.set_xlabel("rate $R$ = KL to the prior (nats)")
    ax.set_ylabel("distortion $D$ (nats)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def against_beta(betas, values, *, ax=None, label: str | None = None, ylabel: str = "", color=None,
                 title: str | None = None, logx: bool = True):
    """A quantity measured for several seeds at each β: mean (line), range over seeds (band), runs (dots).

    ``values`` has shape ``(len(betas), n_seeds)``.
    """
    v = np.asarray(values, dtype=float)
    b = np.asarray(betas, dtype=float)
    if v.ndim != 2 or v.shape[0] != len(b):
        raise ValueError(f"values must have shape (len(betas), n_seeds) = ({len(b)}, n), got {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.4))
    color = color or PALETTE[0]
    ax.fill_between(b, v.min(axis=1), v.max(axis=1), color=color, alpha=0.18, lw=0)
    ax.plot(b, v.mean(axis=1), "o-", color=color, label=(label or "mean") + f" ({v.shape[1]} seeds; band: range)")
    for s in range(v.shape[1]):
        ax.scatter(b, v[:, s], s=9, color=color, alpha=0.5, lw=0)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(b, [f"{x:g}" for x in b])
        ax.minorticks_off()
    ax.set_xlabel("β")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def mi_matrix(mi, entropies, factor_names, *, ax=None, title: str | None = None, order=None):
    """Heat map of the normalised mutual information ``I(z_j; v_k) / H(v_k)``, latents by factors."""
    m = np.asarray(mi, dtype=float) / np.asarray(entropies, dtype=float)[None, :]
    rows = list(range(len(m))) if order is None else list(order)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * m.shape[1] + 1.6, 0.3 * len(rows) + 1.0))
    im = ax.imshow(m[rows], cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(m.shape[1]), factor_names, rotation=30)
    ax.set_yticks(range(len(rows)), [f"$z_{{{j}}}$" for j in rows])
    ax.grid(False)
    if title:
        ax.set_title(title)
    return im


# --------------------------------------------------------------------------- deep autoencoders chapter


def code_box(z: torch.Tensor | np.ndarray, quantile: float = 0.01, margin: float = 0.1) -> tuple[float, float, float, float]:
    """A rectangle ``(z1_min, z1_max, z2_min, z2_max)`` around 2-D codes, ignoring the outer ``quantile``
    on each side and adding ``margin`` of the width: the part of the plane the codes occupy."""
    a = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"code_box needs codes of shape (N, 2), got {a.shape}")
    lo, hi = np.quantile(a, quantile, axis=0), np.quantile(a, 1 - quantile, axis=0)
    pad = margin * (hi - lo)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def decoded_plane(decode, extent: tuple[float, float, float, float], *, n: int = 12, ax=None,
                  title: str | None = None):
    """Decode an ``n x n`` grid of 2-D codes over the rectangle ``extent`` and draw the images as one mosaic.

    Unlike :func:`decoded_grid` (a square centred on 0, for a VAE's prior) the rectangle is
    any part of the plane, e.g. :func:`code_box` of an autoencoder's codes, and the mosaic is
    drawn on ``ax`` in code coordinates, so it can sit beside (or under) a scatter of the codes.
    ``decode(z)`` maps codes ``(n*n, 2)`` to images ``(n*n, 1, H, W)``. Returns the axes.
    """
    x0, x1, y0, y1 = (float(v) for v in extent)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent must be (z1_min, z1_max, z2_min, z2_max) with min < max, got {extent}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    # rows run from the top (large z2) down
    mosaic = _decoded_mosaic(decode, torch.linspace(x0, x1, n), torch.linspace(y1, y0, n))
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * n, 0.45 * n))
    dx, dy = (x1 - x0) / (n - 1) / 2, (y1 - y0) / (n - 1) / 2  # each image is centred on its code
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, extent=(x0 - dx, x1 + dx, y0 - dy, y1 + dy),
              interpolation="nearest", aspect="auto")
    return _code_plane_axes(ax, title)


# --------------------------------------------------------------------------- sparse autoencoders: dictionaries


def feature_panels(features: Mapping[str, torch.Tensor | np.ndarray], *, ncols: int = 12, nrows: int = 2,
                   shape: tuple[int, int] = (28, 28), title: str | None = None, scale: float = 0.72):
    """Dictionary features as images, one labelled panel per model.

    ``features`` maps a panel title to a tensor with one flattened feature per row (the
    first ``ncols * nrows`` are shown). The colour map is diverging: red positive, blue
    negative, white zero, each feature scaled to its own largest absolute value (a
    feature's sign and shape matter, not its scale).
    """
    if not features:
        raise ValueError("feature_panels needs at least one set of features")
    n = ncols * nrows
    fig = plt.figure(figsize=(scale * ncols, (scale * nrows + 0.4) * len(features) + (0.3 if title else 0)))
    subfigs = np.atleast_1d(fig.subfigures(len(features), 1))
    for sub, (label, feats) in zip(subfigs, features.items()):
        imgs = _as_images(feats, shape)[:n]
        axes = sub.subplots(nrows, ncols, squeeze=False)
        sub.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=1 - 0.3 / (scale * nrows + 0.4),
                            wspace=0.06, hspace=0.06)
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for s in ax.spines.values():
                s.set_visible(False)
            if i < len(imgs):
                lim = float(np.abs(imgs[i]).max()) or 1.0
                ax.imshow(imgs[i], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        sub.suptitle(label, fontsize=10, y=0.99)
    if title:
        fig.suptitle(title, y=1.02)
    return fig


def masking_cost(ratios: Sequence[float], kept: Sequence[int], flops: Sequence[float],
                 model_flops: Sequence[float], seconds: Sequence[float], *, n_tokens: int, width: int,
                 conv_flops: Sequence[float] | None = None,
                 widths: Mapping[str, int] | None = None, marks: Mapping[str, tuple[int, int]] | None = None,
                 title: str | None = None):
    """Three panels on what masking saves in a transformer encoder.

    (a) FLOPs per image against the mask ratio: measured, the cost model, what a
    purely quadratic cost would give, and (optionally) a convolutional encoder fed
    the zero-filled image. (b) Measured time per image relative to no masking,
    against the linear ``K/N`` and quadratic ``(K/N)^2`` references. (c) The share
    of one layer's multiply-adds spent on attention scores, ``2N^2d / (12Nd^2 + 2N^2d)
    = N / (6d + N)``, against the number of tokens ``N`` for several widths ``d``.
    """
    ratios = np.asarray(ratios, dtype=float)
    frac = np.asarray(kept, dtype=float) / n_tokens
    flops, model_flops, seconds = (np.asarray(a, dtype=float) for a in (flops, model_flops, seconds))
    i0 = int(np.argmin(ratios))
    if ratios[i0] != 0:
        raise ValueError("the measurements must include mask ratio 0 (the unmasked reference)")
    fig = plt.figure(figsize=(9.5, 7.6))
    grid = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]

    ax = axes[0]
    fine = np.linspace(0, ratios.max(), 100)
    ax.plot(ratios, model_flops / 1e6, color=PALETTE[0], lw=1.5, label="cost model: $2(12Nd^2 + 2N^2d)$ per layer")
    ax.plot(ratios, flops / 1e6, "o", color=PALETTE[0], ms=6, label="measured (FLOP counter)")
    ax.plot(fine, flops[i0] * (1 - fine) ** 2 / 1e6, ":", color=PALETTE[3], label="if the cost were quadratic in $N$")
    if conv_flops is not None:
        ax.plot(ratios, np.asarray(conv_flops, dtype=float) / 1e6, "s--", color=PALETTE[1], ms=5,
                label="convolutional encoder (holes zero-filled)")
    ax.set_xlabel("mask ratio")
    ax.set_ylabel("encoder MFLOPs per image")
    ax.set_title("(a) Work per image")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7.5)

    ax = axes[1]
    ax.plot(ratios, seconds / seconds[i0], "o-", color=PALETTE[2], label="measured time")
    ax.plot(ratios, flops / flops[i0], "x", color=PALETTE[0], ms=7, label="measured FLOPs")
    ax.plot(ratios, frac, "--", color="black", lw=1, label="linear: $K/N$")
    ax.plot(ratios, frac ** 2, ":", color=PALETTE[3], label="quadratic: $(K/N)^2$")
    ax.set_xlabel("mask ratio")
    ax.set_ylabel("relative to no masking")
    ax.set_title("(b) Encoder cost, relative")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7.5)

    ax = axes[2]
    n = np.logspace(0, 5, 200)
    widths = dict(widths or {f"d = {width}": width})
    colors = [PALETTE[0], PALETTE[2], PALETTE[4], PALETTE[1], PALETTE[5]]
    for j, (label, d) in enumerate(widths.items()):
        ax.plot(n, n / (6 * d + n), color=colors[j % len(colors)], label=label)
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    for label, (nn_, d) in (marks or {}).items():
        ax.plot([nn_], [nn_ / (6 * d + nn_)], "o", color="black", ms=4)
        ax.annotate(label, (nn_, nn_ / (6 * d + nn_)), textcoords="offset points", xytext=(4, 6), fontsize=7.5)
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("tokens $N$")
    ax.set_ylabel("attention-score share of a layer")
    ax.set_title("(c) When does $N^2$ matter? ($N = 6d$: half)")
    ax.legend(fontsize=7.5, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- denoising chapter: fields in the plane


def _np2(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _grid_arrays(points, *fields):
    """Reshape ``(n*n, 2)`` grid points (from :func:`aecourse.data.toy2d.grid`) and fields to ``n x n``."""
    p = _np2(points)
    n = int(round(np.sqrt(len(p))))
    if p.ndim != 2 or p.shape[1] != 2 or n * n != len(p):
        raise ValueError(f"points must be an n x n grid of 2-D points, shape (n*n, 2), got {p.shape}; "
                         "make them with aecourse.data.toy2d.grid")
    out = [p[:, 0].reshape(n, n), p[:, 1].reshape(n, n)]
    for f in fields:
        f = _np2(f)
        if f.shape[0] != len(p):
            raise ValueError(f"a field has {f.shape[0]} rows but there are {len(p)} grid points")
        out.append(f.reshape(n, n, *f.shape[1:]))
    return out


def _density_backdrop(ax, log_prob, lim: float, levels: int = 6) -> None:
    t = torch.linspace(-lim, lim, 160)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    with torch.no_grad():
        dens = torch.exp(log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))).reshape(160, 160)
    ax.contourf(_np2(xx), _np2(yy), _np2(dens), levels=levels, cmap="Greys", alpha=0.25)


def _plane_axes(ax, lim: float, title: str | None) -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)
    if title:
        ax.set_title(title)


def vector_field(points, field, *, ax=None, samples=None, log_prob=None, norm=None, title: str | None = None,
                 cmap: str = "viridis", density: float = 1.0, kind: str = "stream"):
    """A stream plot (or, with ``kind="arrows"``, arrows of equal length) of a 2-D vector field
    given on a square grid, coloured by the field's length.

    Args:
        points: grid points ``(n*n, 2)`` from :func:`aecourse.data.toy2d.grid`.
        field: the field at those points, ``(n*n, 2)``.
        samples: optional points ``(m, 2)`` drawn as small dots (the data).
        log_prob: optional log-density; its density is shaded grey behind the field.
        norm: a matplotlib colour norm for the lengths (share one between panels to compare them).

    Returns the stream plot (pass ``.lines`` to ``plt.colorbar``) or the quiver.
    """
    if kind not in ("stream", "arrows"):
        raise ValueError(f"kind must be 'stream' or 'arrows', got {kind!r}")
    X, Y, F = _grid_arrays(points, field)
    if F.shape[-1] != 2:
        raise ValueError(f"the field must have two components per point, got shape {F.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.0))
    lim = float(np.abs(X).max())
    if log_prob is not None:
        _density_backdrop(ax, log_prob, lim)
    speed = np.hypot(F[..., 0], F[..., 1])
    if kind == "stream":
        stream = ax.streamplot(X[0], Y[:, 0], F[..., 0], F[..., 1], color=speed, cmap=cmap, norm=norm,
                               density=density, linewidth=0.9, arrowsize=0.8)
    else:
        unit = np.where((speed > 1e-6 * speed.max())[..., None], F / np.maximum(speed, 1e-12)[..., None], 0.0)
        step = float(X[0, 1] - X[0, 0])
        stream = ax.quiver(X, Y, unit[..., 0], unit[..., 1], speed, cmap=cmap, norm=norm, angles="xy",
                           scale_units="xy", scale=1 / (0.8 * step), width=0.005, pivot="mid")
    if samples is not None:
        s = _np2(samples)
        ax.scatter(s[:, 0], s[:, 1], s=1.5, color="black", alpha=0.35, lw=0)
    _plane_axes(ax, lim, title)
    return stream


def field_error_map(points, learned, exact, *, scale: float = 1.0, ax=None, log_prob=None,
                    title: str | None = None, vmin: float = 0.01, vmax: float = 10.0,
                    label: str = "error"):
    """The error ``||u - v|| / scale`` of a field ``u`` against a reference ``v`` at every grid point,
    on a log colour scale, with contours of a log-density (relative to its maximum) on top.
    Returns the image (for a colour bar)."""
    from matplotlib.colors import LogNorm

    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    X, Y, U, V = _grid_arrays(points, learned, exact)
    err = np.linalg.norm(U - V, axis=-1) / scale
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.0))
    lim = float(np.abs(X).max())
    im = ax.pcolormesh(X, Y, np.clip(err, vmin, vmax), cmap="YlOrRd", norm=LogNorm(vmin=vmin, vmax=vmax),
                       shading="nearest")
    if log_prob is not None:
        with torch.no_grad():
            lp = _np2(log_prob(torch.as_tensor(_np2(points), dtype=torch.float32))).reshape(X.shape)
        top = lp.max()
        levels = [top - 12, top - 6, top - 2]
        cs = ax.contour(X, Y, lp, levels=levels, colors=PALETTE[0], linewidths=1.4)
        ax.clabel(cs, fmt=dict(zip(levels, ["-12", "-6", "-2"])), fontsize=8)
    _plane_axes(ax, lim, title)
    return im


def score_field_figure(points, learned, exact, *, sigma: float, samples=None, log_prob=None):
    """Three panels: the learned field ``r(x) - x``, the exact ``sigma^2 grad log p_sigma``, and the
    length of their difference in units of ``sigma``."""
    from matplotlib.colors import LogNorm

    speeds = np.concatenate([np.hypot(*_np2(f).T) for f in (learned, exact)])
    speeds = speeds[speeds > 0]
    norm = LogNorm(vmin=max(speeds.min(), speeds.max() * 1e-3), vmax=speeds.max())
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.4), layout="constrained")
    s = f" ($\\sigma$ = {sigma:g})"
    vector_field(points, learned, ax=axes[0], samples=samples, norm=norm,
                 title="learned: $r(\\tilde{x}) - \\tilde{x}$" + s)
    stream = vector_field(points, exact, ax=axes[1], samples=samples, norm=norm,
                          title="exact: $\\sigma^2\\nabla\\log p_\\sigma(\\tilde{x})$" + s)
    fig.colorbar(stream.lines, ax=axes[1], shrink=0.85, label="length of the vector")
    im = field_error_map(points, learned, exact, scale=sigma, ax=axes[2], log_prob=log_prob, vmin=0.01, vmax=3.0,
                         title="error; contours: $\\log p_\\sigma$ minus its max")
    fig.colorbar(im, ax=axes[2], shrink=0.85, label="$\\|$learned - exact$\\|$ / $\\sigma$")
    return fig


def field_small_multiples(points, fields, *, samples=None, log_probs=None):
    """One column per noise level: the learned field (top row) over the exact one (bottom row).

    ``fields`` maps ``sigma -> (learned, exact)``; ``log_probs`` optionally maps ``sigma`` to the
    log-density of ``p_sigma`` (shaded). Arrows of equal length show directions; colour shows length.
    """
    from matplotlib.colors import LogNorm

    sigmas = list(fields)
    if not sigmas:
        raise ValueError("field_small_multiples needs at least one noise level")
    fig, axes = plt.subplots(2, len(sigmas), figsize=(2.9 * len(sigmas) + 0.8, 6.0), squeeze=False)
    for j, sigma in enumerate(sigmas):
        learned, exact = fields[sigma]
        speeds = np.concatenate([np.hypot(*_np2(f).T) for f in (learned, exact)])
        norm = LogNorm(vmin=max(speeds[speeds > 0].min(), speeds.max() * 1e-3), vmax=speeds.max())
        lp = log_probs.get(sigma) if log_probs else None
        for i, (f, name) in enumerate(((learned, "learned"), (exact, "exact"))):
            ax = axes[i, j]
            vector_field(points, f, ax=ax, samples=samples, log_prob=lp, norm=norm, kind="arrows",
                         title=f"{name}, $\\sigma$ = {sigma:g}")
            if j > 0:
                ax.set_ylabel("")
            if i == 0:
                ax.set_xlabel("")
    fig.tight_layout()
    return fig


def sample_panels(panels, *, log_prob=None, lim: float = 3.0, s: float = 3.0):
    """Side-by-side scatter plots of 2-D point sets: ``panels`` maps a title to ``(m, 2)`` points."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.7), squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels.items()):
        if log_prob is not None:
            _density_backdrop(ax, log_prob, lim)
        p = _np2(pts)
        ax.scatter(p[:, 0], p[:, 1], s=s, color=PALETTE[0], alpha=0.6, lw=0)
        _plane_axes(ax, lim, title)
    fig.tight_layout()
    return fig


def error_curves(levels, errors, *, ax=None, xlabel: str = "noise level", ylabel: str = "squared error per image",
                 title: str | None = None):
    """One line per method: ``errors`` maps a name to its errors at ``levels``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.5))
    for i, (name, ys) in enumerate(errors.items()):
        if len(ys) != len(levels):
            raise ValueError(f"{name!r} has {len(ys)} errors for {len(levels)} levels")
        ax.plot(levels, ys, marker="o", color=PALETTE[i % len(PALETTE)], label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
