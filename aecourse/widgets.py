"""ipywidgets explorers for the live notebooks.

On the website, widgets cannot run (there is no kernel), so each chapter shows a
static figure in their place: the widget cell is tagged ``remove-cell`` and a
static figure computed from the same function follows it.
"""

from __future__ import annotations

import io


def figure_png(fig, dpi: int = 90) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it.

    The explorers show their figures in an ``ipywidgets.Image``: drawing into an
    ``Output`` widget with ``display`` can stall a headless execution (nbclient).
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------- β-VAE chapter: traversal explorer


def traversal_explorer(models, images, *, limit: float = 3.0, kl=None):
    """Set each latent of a VAE by hand and watch the decoded image change.

    Args:
        models: a dict ``label -> VAE`` (e.g. one per β); a dropdown picks one.
        images: images ``(N, 1, H, W)``; a slider picks one, and the latent sliders jump to
            its posterior mean ``mu(x)``.
        limit: the sliders run from ``-limit`` to ``limit`` (the prior is N(0, 1)).
        kl: optional dict ``label -> per-latent average KL`` (nats), shown next to each slider
            so that the inactive latents (KL near 0) are easy to spot.

    Returns the widget. ``widget.state`` holds the current ``label``, ``index``, code ``z``
    and decoded image ``decoded`` (useful in tests and for saving a figure).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    import torch

    if not models:
        raise ValueError("traversal_explorer needs at least one model, e.g. {'β = 1': model}")
    labels = list(models)
    dims = {models[k].code_dim for k in labels}
    if len(dims) != 1:
        raise ValueError(f"the models must share one code size to share the sliders; got sizes {sorted(dims)}")
    m = dims.pop()
    pick = W.Dropdown(options=labels, description="model")
    index = W.IntSlider(0, 0, len(images) - 1, description="image")
    sliders = [W.FloatSlider(0.0, min=-limit, max=limit, step=0.1, description=f"z{j}",
                             continuous_update=False, layout=W.Layout(width="320px")) for j in range(m)]
    out = W.Image(format="png")
    state: dict = {}

    def kl_labels():
        per = (kl or {}).get(pick.value)
        for j, s in enumerate(sliders):
            s.description = f"z{j}" + (f" ({float(per[j]):.1f})" if per is not None else "")

    def draw(*_):
        model = models[pick.value]
        z = torch.tensor([[s.value for s in sliders]], dtype=torch.float32)
        with torch.no_grad():
            dev = next(model.parameters()).device
            img = model.mean(model.decode(z.to(dev))).reshape(images.shape[1:]).cpu()
        state.update(label=pick.value, index=index.value, z=z[0], decoded=img)
        fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.2))
        for ax, im, t in zip(axes, (images[index.value], img), ("the image", "decoded from the sliders")):
            ax.imshow(im[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(t, fontsize=9)
            ax.axis("off")
        out.value = figure_png(fig)

    def reset(*_):
        model = models[pick.value]
        with torch.no_grad():
            mu, _ = model.encode(images[index.value:index.value + 1].to(next(model.parameters()).device))
        for s, v in zip(sliders, mu[0].tolist()):
            with s.hold_trait_notifications():
                s.unobserve(draw, "value")
                s.value = max(-limit, min(limit, v))
                s.observe(draw, "value")
        kl_labels()
        draw()

    for s in sliders:
        s.observe(draw, "value")
    pick.observe(reset, "value")
    index.observe(reset, "value")
    header = W.HTML("Sliders: the code <i>z</i>; in brackets, each latent's average KL in nats "
                    "(near 0: the latent is inactive and moving it changes nothing).")
    box = W.VBox([W.HBox([pick, index]), header, W.HBox([W.VBox(sliders), out])])
    box.state = state
    reset()
    return box


# --------------------------------------------------------------------------- deep autoencoders chapter: latent plane


def latent_explorer(decode, codes, labels=None, *, extent=None, classes=None):
    """Move a point over a 2-D code plane and see the image the decoder makes of it.

    Args:
        decode: maps codes ``(n, 2)`` to images ``(n, 1, H, W)``, e.g. ``model.decode``.
        codes: the codes of some data, ``(N, 2)``, drawn as a scatter for orientation.
        labels: optional class labels of those codes (colours the scatter).
        extent: ``(z1_min, z1_max, z2_min, z2_max)`` of the sliders; default: a box around
            the codes (:func:`aecourse.plots.code_box`) widened by half its size on each side,
            so that you can also leave the region the data occupy.
        classes: optional class names for the legend.

    Returns the widget. ``widget.state`` holds the current code ``z`` and the decoded image
    ``decoded`` (useful in tests and for saving a figure).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    import torch

    from aecourse.plots import code_box, latent_scatter

    codes = torch.as_tensor(codes).detach().cpu().float()
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"latent_explorer needs 2-D codes of shape (N, 2), got {tuple(codes.shape)}; "
                         "train an autoencoder with code_dim=2")
    if extent is None:
        x0, x1, y0, y1 = code_box(codes)
        wx, wy = (x1 - x0) / 2, (y1 - y0) / 2
        extent = (x0 - wx, x1 + wx, y0 - wy, y1 + wy)
    x0, x1, y0, y1 = (float(v) for v in extent)
    centre = codes.median(dim=0).values.tolist()
    s1 = W.FloatSlider(min(max(centre[0], x0), x1), min=x0, max=x1, step=(x1 - x0) / 200, description="z1",
                       continuous_update=True, readout_format=".2f")
    s2 = W.FloatSlider(min(max(centre[1], y0), y1), min=y0, max=y1, step=(y1 - y0) / 200, description="z2",
                       continuous_update=True, readout_format=".2f")
    out = W.Image(format="png")
    state: dict = {}

    def draw(*_):
        z = torch.tensor([[s1.value, s2.value]], dtype=torch.float32)
        with torch.no_grad():
            img = decode(z).detach().cpu().reshape(-1)
        side = int(round(img.numel() ** 0.5))
        img = img.reshape(side, side)
        state.update(z=z[0], decoded=img)
        fig, (ax, ax_img) = plt.subplots(1, 2, figsize=(7.5, 3.4), gridspec_kw={"width_ratios": [1.5, 1]})
        latent_scatter(codes, labels, ax=ax, classes=classes, s=4, alpha=0.5)
        ax.plot([z[0, 0]], [z[0, 1]], marker="x", color="black", ms=12, mew=2.5)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title("codes of the data; x = your point")
        ax_img.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax_img.set_title(f"decoded at z = ({s1.value:.2f}, {s2.value:.2f})", fontsize=9)
        ax_img.axis("off")
        fig.tight_layout()
        out.value = figure_png(fig)

    s1.observe(draw, "value")
    s2.observe(draw, "value")
    box = W.VBox([W.HBox([s1, s2]), out])
    box.state = state
    draw()
    return box


# --------------------------------------------------------------------------- denoising chapter: noise level


def noise_level_explorer(points, fields, *, samples=None, log_probs=None, notes=None):
    """A slider over the noise level sigma: the learned DAE field beside the exact one.

    Args:
        points: grid points ``(n*n, 2)`` from :func:`aecourse.data.toy2d.grid`.
        fields: a dict ``sigma -> (learned, exact)`` of precomputed fields at ``points``
            (nothing is trained or evaluated while the slider moves).
        samples: optional data points ``(m, 2)`` drawn as dots.
        log_probs: optional dict ``sigma -> log-density of p_sigma`` (shaded behind the field).
        notes: optional dict ``sigma -> str`` shown under the plots (e.g. the agreement).

    Returns the widget; ``widget.state["sigma"]`` is the level shown. The figure is rendered
    to a PNG image widget (no output capture), so the explorer also runs unattended.
    """

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from aecourse.plots import vector_field

    if not fields:
        raise ValueError("noise_level_explorer needs precomputed fields: {sigma: (learned, exact)}")
    sigmas = sorted(fields)
    slider = W.SelectionSlider(options=[(f"{s:g}", s) for s in sigmas], value=sigmas[len(sigmas) // 2],
                               description="noise σ", continuous_update=False)
    image = W.Image(format="png")
    note = W.HTML()
    state: dict = {}

    def draw(*_):
        sigma = slider.value
        state["sigma"] = sigma
        learned, exact = fields[sigma]
        lp = (log_probs or {}).get(sigma)
        fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.0))
        vector_field(points, learned, ax=axes[0], samples=samples, log_prob=lp, kind="arrows",
                     title=f"learned $r(x) - x$, $\\sigma$ = {sigma:g}")
        vector_field(points, exact, ax=axes[1], samples=samples, log_prob=lp, kind="arrows",
                     title=f"exact $\\sigma^2\\nabla\\log p_\\sigma$, $\\sigma$ = {sigma:g}")
        fig.tight_layout()
        image.value = figure_png(fig)
        note.value = (notes or {}).get(sigma, "")

    slider.observe(draw, "value")
    box = W.VBox([slider, image, note])
    box.state = state
    draw()
    return box
