"""Tests for the chapter "Linear autoencoders and PCA": the model, the closed forms, the checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aecourse.exercises import NotYet
from aecourse.exercises import linear_pca as ex
from aecourse.metrics import (best_affine_decoder_error, covariance, direction_cosines, linear_ae_loss, pca,
                              principal_directions_from_decoder, weight_decay_optimum)
from aecourse.models import LinearAutoencoder
from aecourse.objectives import WeightDecay, squared_error
from aecourse.optim import adam_decay

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "linear_pca.ipynb"


def data_with_spectrum(n: int = 300, d: int = 10, seed: int = 0, decay: float = 0.7) -> torch.Tensor:
    """Float64 data with distinct variances decay^i along random orthonormal directions, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    scales = decay ** torch.arange(d, dtype=torch.float64)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ q.T + 1.5


def notebook_function(name: str):
    """Execute the notebook cell that defines ``name`` (with its solution) and return the function."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    for cell in cells:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in src:
            namespace = {"torch": torch}
            exec(src, namespace)
            return namespace[name]
    raise AssertionError(f"no cell defines {name} in {NOTEBOOK.name}")


# --------------------------------------------------------------------------- the model


def test_linear_autoencoder_shapes_and_init():
    torch.manual_seed(0)
    model = LinearAutoencoder(input_shape=(1, 28, 28), code_dim=5)
    x = torch.rand(7, 1, 28, 28)
    assert model(x).shape == x.shape
    assert model(x.reshape(7, -1)).shape == (7, 784)
    assert model.encode(x).shape == (7, 5)
    assert model.W1.shape == (5, 784) and model.W2.shape == (784, 5)
    assert torch.count_nonzero(model.encoder.bias) == 0 and torch.count_nonzero(model.decoder.bias) == 0
    # both weight matrices start at the same small scale, std 0.1 / sqrt(D)
    for w in (model.W1, model.W2):
        assert abs(float(w.std()) - 0.1 / 28) < 0.1 / 28 * 0.1
    # the linear model is exactly W2 (W1 x + b1) + b2
    flat = x.reshape(7, -1)
    with torch.no_grad():
        model.encoder.bias.normal_()
        model.decoder.bias.normal_()
        expected = (flat @ model.W1.T + model.encoder.bias) @ model.W2.T + model.decoder.bias
    torch.testing.assert_close(model(flat).detach(), expected)


def test_linear_autoencoder_bad_input():
    with pytest.raises(ValueError, match="code_dim"):
        LinearAutoencoder(code_dim=0)
    with pytest.raises(ValueError, match="init_scale"):
        LinearAutoencoder(code_dim=2, init_scale=-1.0)
    model = LinearAutoencoder(input_shape=(4,), code_dim=2)
    with pytest.raises(ValueError, match="expects inputs"):
        model(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="W1 of shape"):
        model.set_weights(torch.zeros(2, 5), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="no biases"):
        LinearAutoencoder(input_shape=(4,), code_dim=2, bias=False).set_weights(
            torch.zeros(2, 4), torch.zeros(4, 2), mean=torch.zeros(4))


# --------------------------------------------------------------------------- PCA and Eckart-Young


def test_notebook_svd_lines_agree_with_package_pca_and_sklearn():
    from sklearn.decomposition import PCA

    x = data_with_spectrum(n=400, d=12).float()
    mean = x.mean(dim=0)                           # the notebook's lines
    _, s, Vt = torch.linalg.svd(x - mean, full_matrices=False)
    variances = s**2 / len(x)
    p = pca(x)
    torch.testing.assert_close(variances, p.variances, rtol=1e-4, atol=1e-6)
    assert direction_cosines(Vt, p.components).min() > 0.9999
    sk = PCA(n_components=12, svd_solver="covariance_eigh").fit(x.double().numpy())
    torch.testing.assert_close(torch.as_tensor(sk.explained_variance_, dtype=torch.float32),
                               variances * len(x) / (len(x) - 1), rtol=1e-4, atol=1e-6)
    assert direction_cosines(torch.as_tensor(sk.components_), Vt).min() > 0.9999


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_eckart_young_floor(k, seed):
    x = data_with_spectrum(n=200, d=8, seed=seed)
    p = pca(x)
    cov = covariance(p)
    # PCA's reconstruction error is the sum of the discarded eigenvalues
    err = float(squared_error(p.reconstruct(x.float(), k).double(), x).mean())
    assert err == pytest.approx(p.optimal_error(k), rel=1e-4)
    # a random rank-k linear autoencoder with the optimal biases does worse; its data loss is linear_ae_loss
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(k, 8, generator=g, dtype=torch.float64)
    W2 = torch.randn(8, k, generator=g, dtype=torch.float64)
    model = LinearAutoencoder(input_shape=(8,), code_dim=k).double().set_weights(W1, W2, mean=x.mean(dim=0))
    with torch.no_grad():
        data_loss = float(squared_error(model(x), x).mean())
    assert data_loss == pytest.approx(float(linear_ae_loss(W1, W2, cov)), rel=1e-6)
    assert data_loss >= p.optimal_error(k) * (1 - 1e-6)


def test_symmetry_and_critical_points():
    x = data_with_spectrum(n=500, d=9, seed=3)
    p = pca(x)
    cov = covariance(p)
    V = p.components.to(torch.float64)
    k = 3
    # the loss is invariant under (A^-1 W1, W2 A)
    g = torch.Generator().manual_seed(0)
    W1 = torch.randn(k, 9, generator=g, dtype=torch.float64)
    W2 = torch.randn(9, k, generator=g, dtype=torch.float64)
    A = torch.randn(k, k, generator=g, dtype=torch.float64) + 2 * torch.eye(k, dtype=torch.float64)
    torch.testing.assert_close(linear_ae_loss(W1, W2, cov), linear_ae_loss(torch.linalg.solve(A, W1), W2 @ A, cov))

    def grad_norm(W1, W2):
        W1, W2 = W1.clone().requires_grad_(), W2.clone().requires_grad_()
        grads = torch.autograd.grad(linear_ae_loss(W1, W2, cov), (W1, W2))
        return float(torch.cat([gr.flatten() for gr in grads]).norm())

    # the top-k projection is a critical point at the optimum; so is any other set of eigenvectors
    assert grad_norm(V[:k], V[:k].T) < 1e-5
    assert float(linear_ae_loss(V[:k], V[:k].T, cov)) == pytest.approx(p.optimal_error(k), rel=1e-5)
    swapped = V[[0, 1, 3]]
    assert grad_norm(swapped, swapped.T) < 1e-5
    excess = float(linear_ae_loss(swapped, swapped.T, cov)) - p.optimal_error(k)
    assert excess == pytest.approx(float(p.variances[2] - p.variances[3]), rel=1e-4)
    # ... but a saddle: turning the last column towards v3 lowers the loss
    turned = torch.stack([V[0], V[1], 0.995 * V[3] + 0.1 * V[2]])
    assert float(linear_ae_loss(turned, turned.T, cov)) < float(linear_ae_loss(swapped, swapped.T, cov))
    # and the loss is not convex: the midpoint of two global minima is worse than both
    mid = linear_ae_loss(0 * V[:k], 0 * V[:k].T, cov)
    assert float(mid) == pytest.approx(p.total_variance) and float(mid) > p.optimal_error(k)


# --------------------------------------------------------------------------- weight decay


def test_weight_decay_optimum_matches_numerical_minimum():
    torch.manual_seed(0)
    x = data_with_spectrum(n=400, d=6, seed=5, decay=0.6)
    p = pca(x)
    cov = covariance(p)
    k, lam = 3, 0.5 * float(p.variances[2])
    pred = weight_decay_optimum(p, k, lam)
    W1 = (0.3 * torch.randn(k, 6, dtype=torch.float64)).requires_grad_()
    W2 = (0.3 * torch.randn(6, k, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.LBFGS([W1, W2], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = linear_ae_loss(W1, W2, cov, lam)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    W1, W2 = W1.detach(), W2.detach()
    assert float(linear_ae_loss(W1, W2, cov, lam)) == pytest.approx(pred.loss, rel=1e-7)
    U, S, _ = torch.linalg.svd(W2, full_matrices=False)
    torch.testing.assert_close(S.float(), pred.singular_values, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(W1, W2.T, rtol=1e-4, atol=1e-5)               # the encoder is the transpose
    assert direction_cosines(U.T, p.components[:k]).min() > 0.9999           # left singular vectors = PCA
    # reconstruction part of the optimum
    rec = float(linear_ae_loss(W1, W2, cov))
    assert rec == pytest.approx(pred.reconstruction, rel=1e-6)


def test_weight_decay_optimum_switches_off_weak_directions():
    x = data_with_spectrum(n=300, d=5, seed=1)
    p = pca(x)
    lam = float(p.variances[1]) * 1.01                   # above the second variance
    pred = weight_decay_optimum(p, 3, lam)
    assert float(pred.singular_values[0]) > 0
    assert torch.all(pred.singular_values[1:] == 0)
    assert pred.loss == pytest.approx(p.total_variance - float(p.variances[0]) + 2 * lam - lam**2 / float(p.variances[0]),
                                      rel=1e-6)
    with pytest.raises(ValueError):
        weight_decay_optimum(p, 0, 0.1)
    with pytest.raises(ValueError):
        weight_decay_optimum(p, 2, -1.0)


def test_weight_decay_objective():
    torch.manual_seed(0)
    model = LinearAutoencoder(input_shape=(6,), code_dim=2)
    with torch.no_grad():
        model.encoder.bias.fill_(3.0)                    # biases must not be penalised
        model.decoder.bias.fill_(-2.0)
    x = torch.randn(10, 6)
    terms = WeightDecay(0.3)(model, x)
    rec = squared_error(model(x), x).mean()
    penalty = model.W1.pow(2).sum() + model.W2.pow(2).sum()
    torch.testing.assert_close(terms["reconstruction"], rec)
    torch.testing.assert_close(terms["weight_penalty"], penalty)
    torch.testing.assert_close(terms["loss"], rec + 0.3 * penalty)
    with pytest.raises(ValueError, match="lam"):
        WeightDecay(-0.1)
    with pytest.raises(ValueError, match="no weight matrices"):
        WeightDecay(0.1)(torch.nn.Identity(), x)


# --------------------------------------------------------------------------- recovering directions


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_principal_directions_from_decoder(seed, k):
    x = data_with_spectrum(n=300, d=8, seed=seed)
    p = pca(x)
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, k, generator=g, dtype=torch.float64) + 3 * torch.eye(k, dtype=torch.float64)
    W2 = p.components[:k].to(torch.float64).T @ A
    directions, variances = principal_directions_from_decoder(W2, x)
    assert direction_cosines(directions, p.components[:k]).min() > 0.9999
    torch.testing.assert_close(variances, p.variances[:k], rtol=1e-4, atol=1e-7)
    # the notebook's exercise solution agrees with the package
    nb_directions = notebook_function("recover_directions")(W2, x)
    assert direction_cosines(nb_directions, directions).min() > 0.9999


def test_principal_directions_bad_input():
    with pytest.raises(ValueError, match="W2 must have shape"):
        principal_directions_from_decoder(torch.zeros(5, 2), torch.zeros(10, 6))


# --------------------------------------------------------------------------- affine decoders and PCA


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_no_affine_decoder_beats_pca(seed, k):
    x = data_with_spectrum(n=200, d=8, seed=seed)
    p = pca(x)
    g = torch.Generator().manual_seed(seed)
    h = torch.tanh(x @ torch.randn(8, k, generator=g, dtype=torch.float64))
    err = best_affine_decoder_error(h, x, chunk=37)
    # agrees with an explicit least-squares fit with an intercept column
    design = torch.cat([h, torch.ones(len(h), 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(design, x).solution
    assert err == pytest.approx(float((x - design @ coef).pow(2).sum() / len(x)), rel=1e-6)
    assert err >= p.optimal_error(k) * (1 - 1e-6)
    # PCA's own code reaches the floor
    assert best_affine_decoder_error(p.encode(x.float(), k), x) == pytest.approx(p.optimal_error(k), rel=1e-5)
    # and the notebook's exercise solution gives the same number
    assert notebook_function("best_decoder_error")(h, x) == pytest.approx(err, rel=1e-6)


# --------------------------------------------------------------------------- the optimiser and the checks


def test_adam_decay_schedule():
    w = torch.nn.Parameter(torch.ones(3))
    opt = adam_decay(steps=10, final_fraction=0.01)([w], lr=0.5)
    lrs = []
    for _ in range(15):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[9] == pytest.approx(0.5 * 0.01, rel=1e-9)
    assert lrs[-1] == pytest.approx(0.5 * 0.01, rel=1e-9)          # stays at the floor
    assert lrs[0] == pytest.approx(0.5 * 0.01 ** 0.1, rel=1e-9)
    assert adam_decay(10).__qualname__ != adam_decay(20).__qualname__   # the cache tells them apart
    with pytest.raises(ValueError):
        adam_decay(0)
    with pytest.raises(ValueError):
        adam_decay(10, final_fraction=0.0)


def test_exercise_checks_accept_solutions_and_reject_mistakes():
    recover = notebook_function("recover_directions")
    shrink = notebook_function("shrunk_singular_values")
    affine = notebook_function("best_decoder_error")
    ex.check_recover_directions(recover)
    ex.check_shrinkage(shrink)
    x = data_with_spectrum(n=300, d=16, seed=2).float()
    out = ex.check_affine_decoder_error(affine, x, k=3, max_examples=250)
    assert out["n"] == 250
    assert out["floor"] <= min(v for n, v in out.items() if n not in ("floor", "n")) * (1 + 1e-4)

    with pytest.raises(NotYet, match="columns"):
        ex.check_recover_directions(lambda W2, x: recover(W2, x).T)
    with pytest.raises(NotYet, match="order"):
        ex.check_recover_directions(lambda W2, x: recover(W2, x).flip(0))
    with pytest.raises(NotYet, match="orthonormal"):
        ex.check_recover_directions(lambda W2, x: W2.T)
    with pytest.raises(NotYet, match="NotImplementedError"):
        ex.check_recover_directions(lambda W2, x: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(NotYet, match="square root"):
        ex.check_shrinkage(lambda v, lam: (1 - lam / v).clamp(min=0))
    with pytest.raises(NotYet, match="NaN"):
        ex.check_shrinkage(lambda v, lam: (1 - lam / v).sqrt())

    def no_offset(h, x):
        coef = torch.linalg.lstsq(h, x).solution
        return float((x - h @ coef).pow(2).sum(dim=1).mean())

    with pytest.raises(NotYet, match="offset"):
        ex.check_affine_decoder_error(no_offset, x, k=3)
    with pytest.raises(NotYet, match="averaged over the dimensions"):
        ex.check_affine_decoder_error(lambda h, x: affine(h, x) / x.shape[1], x, k=3)


def test_covariance_from_pca():
    x = data_with_spectrum(n=100, d=7, seed=4)
    xc = x - x.mean(dim=0)
    torch.testing.assert_close(covariance(pca(x)), xc.T @ xc / len(x), rtol=1e-5, atol=1e-6)
