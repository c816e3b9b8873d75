"""Denoising chapter: corruptions, the DAE objective, Tweedie's formula, score fields, Langevin."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from aecourse import fit  # noqa: E402
from aecourse.corruption import GaussianNoise, Masking  # noqa: E402
from aecourse.data.toy2d import GaussianMixture2D, grid, ring_mixture  # noqa: E402
from aecourse.exercises import NotYet  # noqa: E402
from aecourse.exercises import denoising as ex  # noqa: E402
from aecourse.metrics import (  # noqa: E402
    best_denoiser, denoising_baselines, field_agreement, field_cosines, fixed_points, gaussian_blur,
    mode_counts, pca,
)
from aecourse.models import DenoisingMLP  # noqa: E402
from aecourse.models.denoising import annealed_langevin, displacement, langevin, learned_score  # noqa: E402
from aecourse.objectives import Denoising, Reconstruction, squared_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- corruptions


def test_gaussian_noise_is_zero_mean_with_covariance_sigma_squared():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000, 2), 3.0)
    eps = GaussianNoise(0.5)(x, g) - x
    assert abs(float(eps.mean())) < 0.005
    cov = torch.cov(eps.T)
    assert torch.allclose(cov, 0.25 * torch.eye(2), atol=0.005)


def test_gaussian_noise_expected_error_and_identity_at_zero():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2_000, 1, 28, 28, generator=g)
    c = GaussianNoise(0.3)
    mc = float(squared_error(c(x, g), x).mean())
    assert mc == pytest.approx(c.expected_error(784), rel=0.01)
    same = GaussianNoise(0)(x)
    assert torch.equal(same, x) and same is not x


def test_masking_zeroes_the_right_fraction_and_keeps_the_rest():
    g = torch.Generator().manual_seed(2)
    x = 0.5 + torch.rand(500, 784, generator=g)
    out = Masking(0.3)(x, g)
    zero = out == 0
    assert float(zero.float().mean()) == pytest.approx(0.3, abs=0.005)
    assert torch.equal(out[~zero], x[~zero])
    mc = float(squared_error(out, x).mean())
    assert mc == pytest.approx(Masking(0.3).expected_error(x), rel=0.02)


def test_corruptions_are_reproducible_with_a_generator():
    x = torch.rand(10, 5)
    for c in (GaussianNoise(0.2), Masking(0.5)):
        a = c(x, torch.Generator().manual_seed(7))
        b = c(x, torch.Generator().manual_seed(7))
        assert torch.equal(a, b)


@pytest.mark.parametrize("make", [lambda: GaussianNoise(-0.1), lambda: GaussianNoise(float("nan")),
                                  lambda: Masking(1.0), lambda: Masking(-0.2)])
def test_bad_corruption_settings_are_refused(make):
    with pytest.raises(ValueError, match="must"):
        make()


def test_corruption_of_integer_data_is_refused():
    with pytest.raises(TypeError, match="float"):
        GaussianNoise(0.1)(torch.ones(3, 2, dtype=torch.int64))


# --------------------------------------------------------------------------- the objective


def test_denoising_objective_is_squared_error_of_model_on_corrupted_input():
    model = nn.Linear(4, 4)
    x = torch.randn(8, 4)
    torch.manual_seed(3)
    terms = Denoising(GaussianNoise(0.7))(model, x)
    torch.manual_seed(3)
    x_tilde = x + 0.7 * torch.randn_like(x)
    expected = ((model(x_tilde) - x) ** 2).sum(dim=1).mean()
    assert torch.allclose(terms["loss"], expected)
    assert terms["loss"] is terms["denoising"]
    terms["loss"].backward()
    assert model.weight.grad is not None


def test_denoising_with_zero_noise_is_the_reconstruction_objective():
    model = nn.Linear(3, 3)
    x = torch.randn(5, 3)
    assert torch.allclose(Denoising(GaussianNoise(0))(model, x)["loss"], Reconstruction()(model, x)["loss"])


def test_denoising_refuses_a_non_callable_corruption():
    with pytest.raises(TypeError, match="callable"):
        Denoising(0.3)


def test_the_objective_shown_in_the_notebook_is_the_package_code():
    nb = nbformat.read(ROOT / "book" / "denoising.ipynb", as_version=4)
    shown = next(c.source for c in nb.cells if c.cell_type == "markdown" and "x_tilde = self.corruption(x)" in c.source)
    block = re.search(r"```python\n(.*?)```", shown, re.S).group(1)
    body = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    source = [line.strip() for line in inspect.getsource(Denoising.__call__).splitlines()]
    for line in body:
        assert line in source, f"the notebook shows {line!r}, which is not in Denoising.__call__"


# --------------------------------------------------------------------------- Tweedie's formula


def test_score_is_the_gradient_of_log_prob():
    p = ring_mixture(5, 1.5, 0.3)
    x = torch.randn(20, 2).requires_grad_(True)
    (auto,) = torch.autograd.grad(p.log_prob(x).sum(), x)
    assert torch.allclose(p.score(x.detach()), auto, atol=1e-4)


def test_tweedie_equals_the_explicit_posterior_mean_of_a_mixture():
    """E[x | x~] by Bayes' rule, component by component, against x~ + sigma^2 grad log p_sigma."""
    p = ring_mixture(8, 2.0, 0.15)
    sigma = 0.4
    x_noisy = 3 * torch.randn(50, 2)
    s2, v = p.std**2, p.std**2 + sigma**2
    resp = torch.softmax(torch.log(p.weights) - torch.cdist(x_noisy, p.means) ** 2 / (2 * v), dim=1)
    per_component = p.means[None] + (s2 / v) * (x_noisy[:, None] - p.means[None])   # (n, K, 2)
    explicit = (resp[..., None] * per_component).sum(dim=1)
    assert torch.allclose(p.posterior_mean(x_noisy, sigma), explicit, atol=1e-5)


def test_posterior_mean_beats_other_denoisers_by_monte_carlo():
    g = torch.Generator().manual_seed(4)
    p = ring_mixture()
    sigma = 0.5
    x = p.sample(100_000, g)
    x_noisy = GaussianNoise(sigma)(x, g)
    best = p.posterior_mean(x_noisy, sigma)
    err = float(squared_error(best, x).mean())
    for other in (x_noisy, 0.9 * best + 0.1 * x_noisy, best * 1.05, p.posterior_mean(x_noisy, 0.8 * sigma)):
        assert err < float(squared_error(other, x).mean())


def test_learned_score_of_a_perfect_denoiser_is_the_score_of_p_sigma():
    p = ring_mixture()
    sigma = 0.3

    class Perfect(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return p.posterior_mean(x, sigma)

    x = 3 * torch.randn(40, 2)
    assert torch.allclose(learned_score(Perfect(), sigma)(x), p.convolve(sigma).score(x), atol=1e-3)
    with pytest.raises(ValueError, match="sigma"):
        learned_score(Perfect(), 0.0)


# --------------------------------------------------------------------------- field metrics


def test_field_agreement_on_known_cases():
    v = torch.randn(100, 2)
    same = field_agreement(v, v)
    assert same.cosine == pytest.approx(1.0) and same.relative_error == pytest.approx(0.0, abs=1e-7)
    opposite = field_agreement(-v, v)
    assert opposite.cosine == pytest.approx(-1.0) and opposite.relative_error == pytest.approx(2.0)
    double = field_agreement(2 * v, v)
    assert double.cosine == pytest.approx(1.0) and double.relative_error == pytest.approx(1.0)
    rotated = torch.stack([-v[:, 1], v[:, 0]], dim=1)
    assert field_cosines(rotated, v).abs().max() < 1e-6


def test_field_agreement_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        field_agreement(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="zero"):
        field_agreement(torch.ones(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        field_agreement(torch.full((3, 2), float("nan")), torch.ones(3, 2))


def test_fixed_points_of_the_exact_denoiser_are_the_modes():
    p = ring_mixture()
    starts = grid(3.0, 9)[0]
    sinks = fixed_points(lambda z: p.posterior_mean(z, 0.2), starts, n_iter=300)
    assert len(sinks) == 8
    assert torch.cdist(sinks, p.means).min(dim=1).values.max() < 0.05
    assert len(fixed_points(lambda z: p.posterior_mean(z, 1.6), starts, n_iter=300)) == 1


def test_mode_counts():
    means = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    pts = torch.tensor([[0.1, 0.0], [4.9, 0.1], [5.2, 0.0], [2.5, 0.0]])
    counts, near = mode_counts(pts, means, radius=0.5)
    assert counts.tolist() == [1, 2] and near == pytest.approx(0.75)


# --------------------------------------------------------------------------- Langevin dynamics


def test_langevin_samples_a_gaussian_with_the_known_discretisation_bias():
    """For s(x) = -(x - m)/v the chain is linear; its stationary variance is v / (1 - eta / (4 v))."""
    g = torch.Generator().manual_seed(5)
    m, v, eta = torch.tensor([1.0, -2.0]), 0.5, 0.05
    x = langevin(lambda z: -(z - m) / v, torch.zeros(20_000, 2), eta, 300, g)
    assert torch.allclose(x.mean(dim=0), m, atol=0.03)
    expected_var = v / (1 - eta / (4 * v))
    assert float(x.var(dim=0).mean()) == pytest.approx(expected_var, rel=0.03)


def test_annealed_langevin_with_exact_scores_lands_on_the_modes():
    g = torch.Generator().manual_seed(6)
    p = ring_mixture()
    ladder = [(s, p.convolve(s).score) for s in (1.6, 0.8, 0.4, 0.2, 0.1)]
    out = annealed_langevin(ladder, 6 * torch.rand(500, 2, generator=g) - 3, 100, 0.1, g)
    assert len(out) == 5
    counts, near = mode_counts(out[-1], p.means, radius=0.5)
    assert near > 0.9 and counts.min() > 25


def test_langevin_refuses_bad_settings():
    with pytest.raises(ValueError, match="step_size"):
        langevin(lambda z: z, torch.zeros(2, 2), 0.0, 10)
    with pytest.raises(ValueError, match="decrease"):
        annealed_langevin([(0.1, lambda z: z), (1.0, lambda z: z)], torch.zeros(2, 2), 5)


# --------------------------------------------------------------------------- models


def test_denoising_mlp_shapes_and_errors():
    m = DenoisingMLP()
    assert m(torch.zeros(7, 2)).shape == (7, 2)
    assert m.encode(torch.zeros(7, 2)).shape == (7, 32)
    with pytest.raises(ValueError, match="expects inputs"):
        m(torch.zeros(7, 3))
    with pytest.raises(ValueError, match="positive"):
        DenoisingMLP(hidden=0)


def test_a_trained_dae_learns_the_tweedie_field():
    """A short run at a large noise level: the learned field must point along the exact one."""
    g = torch.Generator().manual_seed(8)
    p = ring_mixture()
    sigma = 0.8
    torch.manual_seed(0)
    model = DenoisingMLP()
    fit(model, Denoising(GaussianNoise(sigma)), p.sample(8_192, g), epochs=25, batch_size=1024, lr=1e-2,
        progress=False)
    x_noisy = GaussianNoise(sigma)(p.sample(2_000, g), g)
    agree = field_agreement(displacement(model, x_noisy), sigma**2 * p.convolve(sigma).score(x_noisy))
    assert agree.cosine > 0.9 and agree.relative_error < 0.4


# --------------------------------------------------------------------------- image baselines


def test_gaussian_blur_keeps_constants_and_checks_input():
    x = torch.full((2, 1, 28, 28), 0.3)
    assert torch.allclose(gaussian_blur(x, 1.5), x, atol=1e-6)
    y = torch.zeros(1, 1, 28, 28)
    y[0, 0, 14, 14] = 1.0
    b = gaussian_blur(y, 1.0)
    assert float(b.sum()) == pytest.approx(1.0, abs=1e-5) and float(b.max()) < 0.2
    assert torch.equal(gaussian_blur(y, 0), y)
    with pytest.raises(ValueError, match="shape"):
        gaussian_blur(torch.zeros(3, 28, 28), 1.0)


def test_best_denoiser_and_baselines():
    x = torch.rand(50, 1, 28, 28)
    name, err = best_denoiser({"copy": lambda z: z, "zeros": torch.zeros_like}, x, x)
    assert name == "copy" and err == 0.0
    fams = denoising_baselines(pca(x, 20), scale=2.0, ks=(4, 8, 64))
    assert set(fams) == {"PCA", "blur"} and list(fams["PCA"]) == ["PCA, k = 4", "PCA, k = 8"]
    out = fams["blur"]["blur, 1 px"](x)
    assert out.shape == x.shape and float(out.max()) <= 1.0


# --------------------------------------------------------------------------- exercise checks


def test_exercise_checks_accept_correct_answers():
    ex.check_mask(lambda x, q: x * (torch.rand_like(x) >= q))
    ex.check_mask(lambda x, q: torch.where(torch.rand(x.shape) < q, torch.zeros_like(x), x))
    ex.check_gaussian_denoiser(lambda xn, mu, s, sigma: mu + s**2 / (s**2 + sigma**2) * (xn - mu))
    few = ring_mixture().sample(50, torch.Generator().manual_seed(9))

    def empirical(xn, xt, sigma):
        w = torch.softmax(-((xn[:, None] - xt[None]) ** 2).sum(-1) / (2 * sigma**2), dim=1)
        return w @ xt

    ex.check_empirical_denoiser(empirical, few)


def test_exercise_checks_reject_wrong_answers():
    with pytest.raises(NotYet, match="divided"):
        ex.check_mask(lambda x, q: x * (torch.rand_like(x) >= q) / (1 - q))
    with pytest.raises(NotYet, match="same pixels"):
        ex.check_mask(lambda x, q: x * (torch.rand(x.shape[1:]) >= q))
    with pytest.raises(NotYet, match="NotImplementedError"):
        ex.check_mask(lambda x, q: (_ for _ in ()).throw(NotImplementedError))
    with pytest.raises(NotYet, match="swapped"):
        ex.check_gaussian_denoiser(lambda xn, mu, s, sigma: mu + sigma**2 / (s**2 + sigma**2) * (xn - mu))
    few = ring_mixture().sample(50, torch.Generator().manual_seed(9))
    with pytest.raises(NotYet):
        ex.check_empirical_denoiser(lambda xn, xt, sigma: xt[torch.cdist(xn, xt).argmin(dim=1)], few)


# --------------------------------------------------------------------------- plots and the widget


def test_field_plots_and_widget_draw():
    import matplotlib.pyplot as plt

    from aecourse import plots
    from aecourse.widgets import noise_level_explorer

    p = ring_mixture()
    pts = grid(3.0, 11)[0]
    fields = {s: (p.convolve(s).score(pts) * s**2 * 1.1, p.convolve(s).score(pts) * s**2) for s in (0.2, 0.8)}
    fig = plots.score_field_figure(pts, *fields[0.2], samples=p.sample(50), log_prob=p.convolve(0.2).log_prob,
                                   sigma=0.2)
    assert len(fig.axes) >= 3
    fig2 = plots.field_small_multiples(pts, fields)
    assert len(fig2.axes) == 4
    widget = noise_level_explorer(pts, fields)
    assert widget.state["sigma"] in fields
    with pytest.raises(ValueError, match="grid"):
        plots.vector_field(torch.zeros(10, 2), torch.zeros(10, 2))
    plt.close("all")


def test_gaussian_mixture_for_the_exercise_matches_a_direct_softmax():
    xt = torch.randn(30, 2)
    xn = torch.randn(10, 2)
    sigma = 0.3
    p_sigma = GaussianMixture2D(xt, sigma, torch.full((30,), 1 / 30))
    via_tweedie = xn + sigma**2 * p_sigma.score(xn)
    direct = torch.softmax(-torch.cdist(xn, xt) ** 2 / (2 * sigma**2), dim=1) @ xt
    assert torch.allclose(via_tweedie, direct, atol=1e-5)
    assert math.isclose(float(p_sigma.weights.sum()), 1.0, rel_tol=1e-6)
