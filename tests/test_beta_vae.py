"""Tests for the β-VAE chapter: the sprites, MIG and active units, the capacity objective,
the traversal helpers and the exercise checks."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from aecourse.data import Sprites, make_sprites, render_sprite
from aecourse.data.sprites import FACTOR_NAMES, SHAPES
from aecourse.metrics import (
    active_latents,
    discretize,
    entropy_discrete,
    mig,
    mutual_information_discrete,
    mutual_information_matrix,
)

# --------------------------------------------------------------------------- sprites


@pytest.fixture(scope="module")
def sprites() -> Sprites:
    return make_sprites()


def test_sprites_shapes_ranges_and_grid(sprites):
    n = 3 * 4 * 6 * 8 * 8
    assert sprites.images.shape == (n, 1, 28, 28)
    assert sprites.images.dtype == torch.float32
    assert sprites.factors.shape == (n, 5) and sprites.factors.dtype == torch.int64
    assert float(sprites.images.min()) == 0.0 and float(sprites.images.max()) == 1.0
    assert sprites.factor_sizes == (3, 4, 6, 8, 8)
    assert sprites.factor_names == FACTOR_NAMES
    # every combination of factor indices occurs exactly once: the factors are independent
    combos = {tuple(r) for r in sprites.factors.tolist()}
    assert len(combos) == n
    # no image is empty and none touches the border (nothing was cut off)
    assert (sprites.images.flatten(1).sum(1) > 3).all()
    border = torch.cat([sprites.images[..., 0, :], sprites.images[..., -1, :],
                        sprites.images[..., :, 0], sprites.images[..., :, -1]], dim=-1)
    assert float(border.max()) == 0.0


def test_sprites_are_deterministic_to_the_byte():
    def digest(s):
        return hashlib.sha256(s.images.numpy().tobytes() + s.factors.numpy().tobytes()).hexdigest()

    a = make_sprites(n_scales=2, n_rotations=3, n_positions=4)
    from aecourse.data import sprites as mod
    mod._make.cache_clear()  # render again from scratch, not from the in-memory cache
    b = make_sprites(n_scales=2, n_rotations=3, n_positions=4)
    assert digest(a) == digest(b)
    a.images.zero_()  # the caller gets a copy: modifying it does not change the next call
    assert digest(make_sprites(n_scales=2, n_rotations=3, n_positions=4)) == digest(b)


def test_sprite_factors_do_what_they_say(sprites):
    base = dict(shape=0, scale=3, rotation=0, x=3, y=3)
    img = lambda **kw: sprites.images[sprites.index_of(**{**base, **kw})][0]  # noqa: E731

    def centre(im):
        rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        m = im.sum()
        return float((im * cols).sum() / m), float((im * rows).sum() / m)

    step = sprites.factor_values["x"][1] - sprites.factor_values["x"][0]
    cx0, cy0 = centre(img())
    cx1, cy1 = centre(img(x=4))
    assert cx1 - cx0 == pytest.approx(step, abs=1e-4) and cy1 == pytest.approx(cy0, abs=1e-4)
    cx2, cy2 = centre(img(y=4))  # y counts upwards: the row index falls
    assert cy0 - cy2 == pytest.approx(step, abs=1e-4) and cx2 == pytest.approx(cx0, abs=1e-4)
    # area grows with the square of the scale
    s0, s3 = sprites.factor_values["scale"][0], sprites.factor_values["scale"][3]
    ratio = float(img(scale=0).sum() / img(scale=3).sum())
    assert ratio == pytest.approx((s0 / s3) ** 2, rel=0.15)  # up to the sampling of the edges
    # rotation keeps the area and changes the image; the three shapes differ
    assert float(img(rotation=2).sum()) == pytest.approx(float(img().sum()), rel=0.08)
    assert float((img(rotation=2) - img()).abs().sum()) > 5
    assert float((img(shape=1) - img()).abs().sum()) > 5 and float((img(shape=2) - img()).abs().sum()) > 5


def test_render_sprite_coverage_and_symmetry():
    # a square of half-side 0.75 * radius: its area in pixels is known
    r = render_sprite("square", 1.0, 0.0, size=28, supersample=8)
    assert r.sum() == pytest.approx((2 * 0.75 * 5.5) ** 2, rel=0.02)
    # a square turned by 90 degrees is the same square
    assert np.allclose(render_sprite("square", 0.8, 90.0), render_sprite("square", 0.8, 0.0), atol=1e-12)
    e = render_sprite("ellipse", 1.0, 0.0, size=28, supersample=8)
    assert e.sum() == pytest.approx(math.pi * 5.5 * 2.75, rel=0.03)
    assert set(SHAPES) == {"square", "ellipse", "heart"}


def test_sprites_bad_input_is_explained(sprites):
    with pytest.raises(ValueError, match="unknown shape"):
        render_sprite("star", 1.0, 0.0)
    with pytest.raises(ValueError, match="do not fit"):
        make_sprites(n_positions=12)
    with pytest.raises(ValueError, match="positive int"):
        make_sprites(n_scales=0)
    with pytest.raises(ValueError, match="missing"):
        sprites.index_of(shape=0)
    with pytest.raises(ValueError, match="test_fraction"):
        sprites.split(1.5)


def test_sprites_split_and_values(sprites):
    train, test = sprites.split(0.1, seed=0)
    assert len(train) + len(test) == len(sprites) and len(test) == round(0.1 * len(sprites))
    both = torch.cat([train.factors, test.factors])
    assert len({tuple(r) for r in both.tolist()}) == len(sprites)
    assert torch.equal(sprites.split(0.1, seed=0)[1].images, test.images)
    v = sprites.values
    assert v.shape == (len(sprites), 5)
    assert set(v[:, 0].tolist()) == {0.0, 1.0, 2.0}
    assert set(v[:, 3].tolist()) == set(float(o) for o in sprites.factor_values["x"])


# --------------------------------------------------------------------------- MIG and its parts


def test_entropy_and_mutual_information_closed_forms():
    rng = np.random.default_rng(0)
    a = np.repeat(np.arange(8), 50)
    assert entropy_discrete(a) == pytest.approx(math.log(8))
    assert mutual_information_discrete(a, a) == pytest.approx(math.log(8))
    # a function of a: I(a; f(a)) = H(f(a))
    b = a // 2
    assert mutual_information_discrete(a, b) == pytest.approx(math.log(4))
    # independent by construction (a product grid): exactly zero
    x, y = np.meshgrid(np.arange(5), np.arange(7))
    assert mutual_information_discrete(x.ravel(), y.ravel()) == pytest.approx(0.0, abs=1e-12)
    # symmetric, non-negative, at most min(H(a), H(b))
    c = rng.integers(0, 6, size=400)
    d = (c + rng.integers(0, 2, size=400)) % 6
    i = mutual_information_discrete(c, d)
    assert i == pytest.approx(mutual_information_discrete(d, c))
    assert 0 < i <= min(entropy_discrete(c), entropy_discrete(d)) + 1e-12


def test_discretize_bins_evenly():
    z = np.linspace(-3, 3, 1000)[:, None] * np.array([1.0, 10.0])
    codes = discretize(z, bins=20)
    assert codes.min() == 0 and codes.max() == 19
    assert np.array_equal(codes[:, 0], codes[:, 1])  # equal-width bins over each column's own range
    assert np.all(np.bincount(codes[:, 0]) == 50)
    assert (discretize(np.ones((10, 2)), bins=5) == 0).all()
    with pytest.raises(ValueError, match="bins"):
        discretize(z, bins=1)
    with pytest.raises(ValueError, match="NaN"):
        discretize(np.array([[np.nan], [0.0]]))


def test_mig_is_one_for_a_code_that_copies_the_factors(sprites):
    f = sprites.factors
    # an affine copy of each factor, in shuffled order, plus uninformative latents
    g = torch.Generator().manual_seed(0)
    z = torch.cat([3 * f[:, [3]].float() + 1, torch.randn(len(f), 3, generator=g),
                   f[:, [0, 4, 1]].float() * 2 - 1, -0.1 * f[:, [2]].float()], dim=1)
    r = mig(z, f)
    assert r.score > 0.98
    assert r.gaps.min() > 0.97
    assert list(r.top) == [4, 6, 7, 0, 5]
    assert np.allclose(r.entropies, np.log(sprites.factor_sizes))
    # equal-width bins are not invariant to monotone maps: a cube crowds small values into
    # one bin, and the estimated information (hence the gap) drops
    cubed = z.clone()
    cubed[:, 7] = cubed[:, 7] ** 3
    assert mig(cubed, f).gaps[2] < r.gaps[2] - 0.05


def test_mig_is_near_zero_for_random_and_entangled_codes(sprites):
    g = torch.Generator().manual_seed(1)
    f = sprites.factors
    assert mig(torch.randn(len(f), 10, generator=g), f).score < 0.02
    # two copies of every factor: perfectly informative but redundant, so no gap
    z = torch.cat([f.float(), f.float() + 0.01 * torch.randn(len(f), 5, generator=g)], dim=1)
    assert mig(z, f).score < 0.05
    # a rotation mixes x and y into both latents: their gaps shrink
    xy = f[:, 3:5].float() - 3.5
    mixed = torch.stack([xy[:, 0] + xy[:, 1], xy[:, 0] - xy[:, 1]], dim=1)
    r = mig(torch.cat([f[:, :3].float(), mixed], dim=1), f)
    assert r.gaps[3] < 0.5 and r.gaps[4] < 0.5 and r.gaps[:3].min() > 0.97


def test_mi_matrix_shape_and_bad_input(sprites):
    f = sprites.factors[:500]
    m = mutual_information_matrix(torch.randn(500, 4), f)
    assert m.shape == (4, 5) and (m >= -1e-12).all()
    with pytest.raises(ValueError, match="at least two latents"):
        mig(torch.randn(500, 1), f)
    with pytest.raises(ValueError, match="entropy is 0"):
        mig(torch.randn(10, 3), torch.zeros(10, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="one row per code"):
        mutual_information_matrix(torch.randn(10, 3), f)


def test_active_latents_counts_latents_that_vary():
    g = torch.Generator().manual_seed(0)
    mu = torch.cat([torch.randn(1000, 3, generator=g), 0.01 * torch.randn(1000, 2, generator=g),
                    torch.zeros(1000, 1)], dim=1)
    n, activity = active_latents(mu, threshold=0.01)
    assert n == 3
    assert activity.shape == (6,) and activity[5] == 0.0
    assert active_latents(mu, threshold=1e-6)[0] == 5
    with pytest.raises(ValueError, match="threshold"):
        active_latents(mu, threshold=0.0)


# --------------------------------------------------------------------------- the β-objective and controlled capacity

from aecourse.models import VAE  # noqa: E402
from aecourse.objectives import ELBO, CapacityELBO, bernoulli_nll, kl_standard_normal  # noqa: E402


def _small_vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE((1, 28, 28), code_dim=4, hidden=(32,))


def test_notebook_beta_objective_matches_the_package():
    """The lines shown in the chapter are the package's ELBO with weight beta."""
    def beta_vae_loss(model, x, beta):
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar)
        return bernoulli_nll(model.decode(z), x).mean() + beta * kl_standard_normal(mu, logvar).mean()

    model, x = _small_vae(), torch.rand(8, 1, 28, 28)
    for beta in (0.5, 1.0, 4.0):
        torch.manual_seed(1)
        mine = beta_vae_loss(model, x, beta)
        torch.manual_seed(1)
        assert torch.allclose(mine, ELBO(beta=beta)(model, x)["loss"])


def test_capacity_objective_terms_and_gradient_sign():
    model, x = _small_vae(), torch.rand(8, 1, 28, 28)
    for capacity in (0.0, 0.5, 50.0):
        torch.manual_seed(2)
        t = CapacityELBO(gamma=10.0, capacity=capacity)(model, x)
        torch.manual_seed(2)
        e = ELBO(beta=1.0)(model, x)
        assert torch.allclose(t["reconstruction"], e["reconstruction"]) and torch.allclose(t["kl"], e["kl"])
        assert torch.allclose(t["loss"], t["reconstruction"] + 10.0 * (t["kl"] - capacity).abs())
    # with capacity 0 it is the β-VAE objective with β = γ (the KL is never negative)
    torch.manual_seed(3)
    a = CapacityELBO(gamma=4.0, capacity=0.0)(model, x)["loss"]
    torch.manual_seed(3)
    assert torch.allclose(a, ELBO(beta=4.0)(model, x)["loss"])
    # below the target the KL term pulls the rate up: d loss / d KL = -gamma
    kl = torch.tensor(1.0, requires_grad=True)
    (3.0 * (kl - 5.0).abs()).backward()
    assert float(kl.grad) == -3.0


def test_capacity_objective_holds_the_rate_near_its_target():
    """A short training run with a target rate ends near that rate; plain β ends far below it."""
    x = make_sprites(n_scales=2, n_rotations=2, n_positions=4).images
    rates = {}
    for name, objective in {"capacity": CapacityELBO(gamma=20.0, capacity=3.0), "beta": ELBO(beta=20.0)}.items():
        model = _small_vae(0)
        from aecourse import fit
        h = fit(model, objective, x, x, epochs=25, batch_size=32, lr=3e-3, seed=0, progress=False)
        rates[name] = h.val["kl"][-1]
    assert abs(rates["capacity"] - 3.0) < 0.75
    assert rates["beta"] < 1.5


def test_capacity_objective_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        CapacityELBO(capacity=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        CapacityELBO(gamma=-1.0)
    with pytest.raises(ValueError, match="likelihood"):
        CapacityELBO(likelihood="poisson")
    assert "capacity=2.5" in repr(CapacityELBO(capacity=2.5))  # the settings key the checkpoint cache


# --------------------------------------------------------------------------- traversals, plots, widget


def test_traverse_sets_one_latent_and_keeps_the_others():
    from aecourse.plots import traverse

    model, x = _small_vae(), torch.rand(1, 28, 28)
    values = torch.linspace(-2, 2, 5)
    out = traverse(model, x, 2, values)
    assert out.shape == (5, 1, 28, 28) and 0 <= float(out.min()) and float(out.max()) <= 1
    with torch.no_grad():
        mu, _ = model.encode(x.unsqueeze(0))
        z = mu.repeat(5, 1)
        z[:, 2] = values
        assert torch.allclose(out, torch.sigmoid(model.decode(z)))
        # setting the latent to its own posterior mean gives the reconstruction
        assert torch.allclose(traverse(model, x, 2, [float(mu[0, 2])])[0], model(x.unsqueeze(0))[0], atol=1e-6)
    assert torch.equal(traverse(model, x.unsqueeze(0), 2, values), out)
    with pytest.raises(ValueError, match="latent must be"):
        traverse(model, x, 4, values)
    with pytest.raises(ValueError, match="one image"):
        traverse(model, torch.rand(2, 1, 28, 28), 0, values)


def test_beta_vae_plots_draw():
    import matplotlib.pyplot as plt

    from aecourse import plots

    model = _small_vae()
    ax = plots.traversal_grid(model, torch.rand(1, 28, 28), [0, 3], [-1, 0, 1], kl=torch.ones(4), title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["$z_{0}$ (1.0 nats)", "$z_{3}$ (1.0 nats)"]
    assert len(ax.get_xticklabels()) == 3 and ax.get_images()[0].get_array().shape == (2 * 28 + 2, 3 * 28 + 2 * 2)
    with pytest.raises(ValueError, match="same size"):
        plots.image_mosaic({"a": torch.rand(2, 1, 28, 28), "b": torch.rand(2, 1, 8, 8)})
    ax = plots.rate_distortion([3.0, 1.0], [50.0, 60.0], ["β=1", "β=4"], seeds_rates=[[3.1, 2.9], [1.0, 1.1]],
                               seeds_distortions=[[49, 51], [60, 61]], extra={"capacity": (2.0, 52.0)})
    assert ax.get_xlabel().startswith("rate")
    ax = plots.against_beta([1, 2, 4], np.ones((3, 3)), ylabel="MIG")
    assert ax.get_xlabel() == "β"
    with pytest.raises(ValueError, match="n_seeds"):
        plots.against_beta([1, 2], np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        plots.rate_distortion([1, 2], [1, 2, 3])
    plots.mi_matrix(np.ones((4, 5)), np.ones(5), FACTOR_NAMES)
    plt.close("all")


def test_traversal_explorer_decodes_the_sliders():
    from aecourse.widgets import traversal_explorer

    models = {"a": _small_vae(0), "b": _small_vae(1)}
    images = torch.rand(5, 1, 28, 28)
    w = traversal_explorer(models, images, kl={"a": torch.arange(4.0), "b": torch.zeros(4)})
    state = w.state
    with torch.no_grad():
        mu, _ = models["a"].encode(images[:1])
    assert torch.allclose(state["z"], mu[0].clamp(-3, 3), atol=1e-6)
    sliders = w.children[2].children[0].children
    sliders[1].value = 2.0
    with torch.no_grad():
        expected = models["a"].mean(models["a"].decode(state["z"].unsqueeze(0)))[0]
    assert float(state["z"][1]) == pytest.approx(2.0) and torch.allclose(state["decoded"], expected)
    w.children[0].children[1].value = 3  # another image: the sliders jump to its code
    with torch.no_grad():
        mu3, _ = models["a"].encode(images[3:4])
    assert torch.allclose(state["z"], mu3[0].clamp(-3, 3), atol=1e-6)
    with pytest.raises(ValueError, match="at least one model"):
        traversal_explorer({}, images)


# --------------------------------------------------------------------------- exercise checks


from aecourse.exercises import NotYet  # noqa: E402
from aecourse.exercises import beta_vae as ex  # noqa: E402


def test_check_kl_per_latent_accepts_answers_and_explains_mistakes(capsys):
    ex.check_kl_per_latent(lambda mu, lv: (0.5 * (mu**2 + lv.exp() - lv - 1)).mean(0))
    ex.check_kl_per_latent(lambda mu, lv: torch.stack([kl_standard_normal(mu[:, [j]], lv[:, [j]]).mean()
                                                       for j in range(mu.shape[1])]))
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(NotYet, match="NotImplementedError"):
        ex.check_kl_per_latent(lambda mu, lv: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(NotYet, match="summed over the batch"):
        ex.check_kl_per_latent(lambda mu, lv: (0.5 * (mu**2 + lv.exp() - lv - 1)).sum(0))
    with pytest.raises(NotYet, match="one number per example"):
        ex.check_kl_per_latent(lambda mu, lv: kl_standard_normal(mu, lv))
    with pytest.raises(NotYet, match="1/2"):
        ex.check_kl_per_latent(lambda mu, lv: (mu**2 + lv.exp() - lv - 1).mean(0))


def test_check_mutual_information_accepts_answers_and_explains_mistakes():
    ex.check_mutual_information(lambda a, b: mutual_information_discrete(a.numpy(), b.numpy()))

    def by_entropies(a, b):  # I(a; b) = H(a) + H(b) - H(a, b)
        pairs = a.numpy().astype(np.int64) * 10_000 + b.numpy().astype(np.int64)
        return entropy_discrete(a.numpy()) + entropy_discrete(b.numpy()) - entropy_discrete(pairs)

    ex.check_mutual_information(by_entropies)
    with pytest.raises(NotYet, match="bits"):
        ex.check_mutual_information(lambda a, b: mutual_information_discrete(a.numpy(), b.numpy()) / math.log(2))
    with pytest.raises(NotYet, match="expected"):
        ex.check_mutual_information(lambda a, b: 0.0)


def test_check_traverse_accepts_answers_and_explains_mistakes():
    from aecourse.plots import traverse

    model, x = _small_vae(), torch.rand(1, 28, 28)
    ex.check_traverse(lambda m, x, j, v: traverse(m, x, j, v), model, x)

    def logits(m, x, j, v):
        mu, _ = m.encode(x.unsqueeze(0))
        z = mu.repeat(len(v), 1)
        z[:, j] = v
        return m.decode(z)

    with pytest.raises(NotYet, match="logits"):
        ex.check_traverse(logits, model, x)

    def sampled(m, x, j, v):
        mu, logvar = m.encode(x.unsqueeze(0))
        z = m.reparameterize(mu, logvar).repeat(len(v), 1)
        z[:, j] = v
        return torch.sigmoid(m.decode(z))

    with pytest.raises(NotYet, match="posterior mean"):
        ex.check_traverse(sampled, model, x)
