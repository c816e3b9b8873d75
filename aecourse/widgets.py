"""ipywidgets explorers for the live notebooks.

On the website, widgets cannot run (there is no kernel), so each chapter shows a
static figure in their place: the widget cell is tagged ``remove-cell`` and a
static figure computed from the same function follows it.
"""

from __future__ import annotations


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
    from IPython.display import display

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
    out = W.Output()
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
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.2))
            for ax, im, t in zip(axes, (images[index.value], img), ("the image", "decoded from the sliders")):
                ax.imshow(im[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(t, fontsize=9)
                ax.axis("off")
            display(fig)
            plt.close(fig)

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
