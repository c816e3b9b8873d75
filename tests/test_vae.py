"""The VAE chapter's mathematics: KL, ELBO, reparameterisation, pPCA, importance weighting."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aecourse.models import VAE
from aecourse.objectives import ELBO, bernoulli_nll, gaussian_nll, kl_standard_normal


# --------------------------------------------------------------------------- KL and likelihoods


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(dim=1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), expected)


def test_kl_matches_monte_carlo():
    mu, logvar = torch.tensor([[0.7, -1.2]]), torch.tensor([[-0.5, 0.8]])
    g = torch.Generator().manual_seed(1)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = mu + (0.5 * logvar).exp() * torch.randn(400_000, 2, generator=g, dtype=torch.float64)
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(dim=1).mean()
    assert abs(float(mc) - float(kl_standard_normal(mu, logvar))) < 0.01


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=2), st.lists(st.floats(-5, 5), min_size=2, max_size=2))
def test_kl_is_non_negative_and_zero_only_at_the_prior(mu, logvar):
    kl = kl_standard_normal(torch.tensor([mu]), torch.tensor([logvar]))
    assert float(kl) >= -1e-6
    assert float(kl_standard_normal(torch.zeros(1, 2), torch.zeros(1, 2))) == 0.0


def test_kl_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="must match"):
        kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 4))


def test_kl_gradcheck():
    mu = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(kl_standard_normal, (mu, logvar))


def test_likelihoods_match_torch_distributions():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 5, 5, generator=g)
    xb = x.bernoulli(generator=g)
    logits = torch.randn(4, 1, 5, 5, generator=g)
    lp = torch.distributions.Bernoulli(logits=logits).log_prob(xb).reshape(4, -1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, xb), -lp)
    mean = torch.rand(4, 1, 5, 5, generator=g)
    lp = torch.distributions.Normal(mean, 0.3).log_prob(x).reshape(4, -1).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, x, 0.3), -lp)


# --------------------------------------------------------------------------- the model


def test_vae_shapes_and_forward_is_the_mean():
    torch.manual_seed(0)
    for lik in ("bernoulli", "gaussian"):
        m = VAE((1, 28, 28), code_dim=3, hidden=(32,), likelihood=lik)
        x = torch.rand(6, 1, 28, 28)
        mu, logvar = m.encode(x)
        assert mu.shape == logvar.shape == (6, 3)
        out = m.decode(mu)
        assert out.shape == x.shape
        expected = torch.sigmoid(out) if lik == "bernoulli" else out
        torch.testing.assert_close(m(x), expected)
        assert m(x.reshape(6, -1)).shape == (6, 784)
        assert m.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 1, 28, 28)


def test_sample_is_reproducible_with_a_generator():
    m = VAE((1, 4, 4), code_dim=2, hidden=(8,))
    a = m.sample(3, generator=torch.Generator().manual_seed(5))
    b = m.sample(3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_reparameterize_has_the_right_moments_and_gradients():
    mu = torch.full((200_000, 1), 1.5, requires_grad=True)
    logvar = torch.full((200_000, 1), math.log(0.25), requires_grad=True)
    z = VAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.detach().mean()) - 1.5) < 0.01 and abs(float(z.detach().std()) - 0.5) < 0.01
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="code_dim"):
        VAE(code_dim=0)
    with pytest.raises(ValueError, match="2 \\* code_dim"):
        VAE((1, 4, 4), code_dim=2, encoder=torch.nn.Linear(16, 3)).encode(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="sigma"):
        ELBO(likelihood="gaussian", sigma=0.0)
    with pytest.raises(ValueError, match="use ELBO"):
        ELBO(likelihood="gaussian")(VAE((1, 4, 4), code_dim=2, hidden=(8,)), torch.rand(2, 1, 4, 4))


def test_elbo_terms_and_beta():
    torch.manual_seed(0)
    m = VAE((1, 4, 4), code_dim=2, hidden=(8,))
    x = torch.rand(10, 1, 4, 4).bernoulli()
    t = ELBO(beta=3.0)(m, x)
    torch.testing.assert_close(t["loss"], t["reconstruction"] + 3.0 * t["kl"])
    mu, logvar = m.encode(x)
    torch.testing.assert_close(t["kl"], kl_standard_normal(mu, logvar).mean())


def test_elbo_is_a_lower_bound_on_a_tractable_model():
    """A linear-Gaussian decoder has an exact log p(x): the ELBO (averaged over many samples) is below it."""
    torch.manual_seed(0)
    d, m_dim, sigma = 5, 2, 0.5
    lin_dec = torch.nn.Linear(m_dim, d)
    model = VAE((d,), code_dim=m_dim, likelihood="gaussian", encoder=torch.nn.Linear(d, 2 * m_dim), decoder=lin_dec)
    x = torch.randn(3, d)
    w, b = lin_dec.weight.detach(), lin_dec.bias.detach()
    cov = w @ w.T + sigma**2 * torch.eye(d)
    log_px = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    obj = ELBO(likelihood="gaussian", sigma=sigma)
    with torch.no_grad():
        neg_elbo = torch.stack([obj(model, x[i].expand(20_000, d))["loss"] for i in range(3)])
    assert torch.all(-neg_elbo <= log_px + 0.05)


# --------------------------------------------------------------------------- probabilistic PCA and the linear VAE

from aecourse.models.ppca import PPCA, LinearVAE, data_covariance, fit_ppca, gaussian_kl  # noqa: E402
from aecourse.objectives import AnalyticELBO  # noqa: E402


def _random_ppca(seed=0, d=5, m=2, sigma2=0.3):
    g = torch.Generator().manual_seed(seed)
    return PPCA(torch.randn(d, m, generator=g, dtype=torch.float64),
                torch.randn(d, generator=g, dtype=torch.float64), sigma2), g


def test_ppca_log_prob_and_posterior_are_exact():
    model, g = _random_ppca()
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(model.mu, model.covariance()).log_prob(x)
    torch.testing.assert_close(model.log_prob(x), ref)
    # the posterior by conditioning the joint Gaussian of (z, x)
    W, s2 = model.W, model.sigma2
    cov_xx, cov_zx = model.covariance(), W.T
    mean = (x - model.mu) @ torch.linalg.solve(cov_xx, cov_zx.T)
    cov = torch.eye(2, dtype=torch.float64) - cov_zx @ torch.linalg.solve(cov_xx, cov_zx.T)
    pm, pc = model.posterior(x)
    torch.testing.assert_close(pm, mean)
    torch.testing.assert_close(pc, cov)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_log_p_equals_elbo_plus_kl_to_posterior(seed):
    """The decomposition log p(x) = ELBO(q) + KL(q || p(z|x)), for random q, exactly."""
    model, g = _random_ppca(seed)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    m = torch.randn(3, 2, generator=g, dtype=torch.float64)
    a = torch.randn(2, 2, generator=g, dtype=torch.float64)
    S = a @ a.T + 0.1 * torch.eye(2, dtype=torch.float64)
    pm, pc = model.posterior(x)
    elbo = model.elbo(x, m, S)
    torch.testing.assert_close(elbo + gaussian_kl(m, S, pm, pc), model.log_prob(x))
    assert torch.all(elbo <= model.log_prob(x) + 1e-10)
    torch.testing.assert_close(model.elbo(x, pm, pc), model.log_prob(x))  # tight at the posterior


def test_gaussian_kl_matches_torch():
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    a, b = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T + torch.eye(3, dtype=torch.float64), b @ b.T + torch.eye(3, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(torch.distributions.MultivariateNormal(m1, s1),
                                            torch.distributions.MultivariateNormal(m2, s2))
    torch.testing.assert_close(gaussian_kl(m1, s1, m2, s2), ref)


def test_fit_ppca_is_the_maximum_likelihood_solution():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 6, generator=g) @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.3, 0.2]))
    model = fit_ppca(x, 2)
    _, cov = data_covariance(x)
    ev = torch.linalg.eigvalsh(cov).flip(0)
    assert abs(model.sigma2 - float(ev[2:].mean())) < 1e-10
    best = float(model.log_prob(x).mean())
    for _ in range(5):  # perturbing W or sigma^2 never helps
        dW = 0.05 * torch.randn(model.W.shape, generator=g, dtype=torch.float64)
        assert float(PPCA(model.W + dW, model.mu, model.sigma2).log_prob(x).mean()) < best
    assert float(PPCA(model.W, model.mu, 1.1 * model.sigma2).log_prob(x).mean()) < best
    # a fixed noise level above an eigenvalue switches that direction off
    fixed = fit_ppca(x, 4, sigma2=float(ev[2]) * 1.01)
    norms = (fixed.W**2).sum(0)
    assert torch.all(norms[2:] == 0) and torch.all(norms[:2] > 0)
    with pytest.raises(ValueError, match="M must"):
        fit_ppca(x, 6)


def test_linear_vae_exact_elbo_matches_sampling_and_is_tight_at_the_ml_solution():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 6, generator=g) @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.3, 0.2]))
    lin = LinearVAE(6, 2, sigma=0.7)
    exact = AnalyticELBO()(lin, x)
    with torch.no_grad():
        sampled = torch.stack([ELBO(likelihood="gaussian", sigma="learned")(lin, x)["loss"] for _ in range(400)])
    assert abs(float(sampled.mean()) - float(exact["loss"].detach())) < 4 * float(sampled.std()) / 20 + 1e-3
    # set the linear VAE to the pPCA ML solution with the exact posterior as encoder: ELBO = log p(x)
    ml = fit_ppca(x, 2, sigma2=0.49)
    A = ml.W.T @ ml.W + ml.sigma2 * torch.eye(2, dtype=torch.float64)
    V = torch.linalg.solve(A, ml.W.T)
    with torch.no_grad():
        lin.decoder.weight.copy_(ml.W.float()); lin.decoder.bias.copy_(ml.mu.float())
        lin.encoder.weight.copy_(V.float()); lin.encoder.bias.copy_(-(V @ ml.mu).float())
        lin.logvar.copy_(torch.log(ml.sigma2 * torch.diagonal(torch.linalg.inv(A))).float())
    elbo = -float(AnalyticELBO()(lin, x)["loss"].detach())
    assert abs(elbo - float(ml.log_prob(x).mean())) < 1e-3


def test_linear_vae_learns_sigma_only_when_asked():
    assert isinstance(LinearVAE(4, 2).log_sigma, torch.nn.Parameter)
    fixed = LinearVAE(4, 2, sigma=0.5)
    assert not isinstance(fixed.log_sigma, torch.nn.Parameter)
    assert abs(float(fixed.log_sigma.exp()) - 0.5) < 1e-6
    with pytest.raises(AttributeError, match="elbo_terms"):
        AnalyticELBO()(VAE((1, 4, 4), code_dim=2, hidden=(8,)), torch.rand(2, 1, 4, 4))


# --------------------------------------------------------------------------- importance weighting

from aecourse.metrics import elbo_estimate, importance_weighted_bound, optimise_local_posteriors  # noqa: E402


def _linear_vae_at_posterior(seed=0):
    """A linear VAE whose encoder is the exact posterior of its decoder, and the matching PPCA."""
    g = torch.Generator().manual_seed(seed)
    W, mu, sigma = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.zeros(5, dtype=torch.float64), 0.6
    model = PPCA(W, mu, sigma**2)
    lin = LinearVAE(5, 2, sigma=sigma).double()
    A = W.T @ W + sigma**2 * torch.eye(2, dtype=torch.float64)
    with torch.no_grad():
        lin.decoder.weight.copy_(W); lin.decoder.bias.zero_()
        lin.encoder.weight.copy_(torch.linalg.solve(A, W.T)); lin.encoder.bias.zero_()
        lin.logvar.copy_(torch.log(sigma**2 * torch.diagonal(torch.linalg.inv(A))))
    return lin, model, g


def test_iw_bound_is_exact_when_q_is_the_posterior():
    """If q(z|x) = p(z|x) and it is diagonal, every weight equals p(x): L_K = log p(x) for every K."""
    lin, model, g = _linear_vae_at_posterior()
    q, _ = torch.linalg.qr(model.W)
    W = q * torch.tensor([2.0, 0.7], dtype=torch.float64)   # orthogonal columns: a diagonal posterior
    model = PPCA(W, model.mu, model.sigma2)
    A = W.T @ W + model.sigma2 * torch.eye(2, dtype=torch.float64)
    with torch.no_grad():
        lin.decoder.weight.copy_(W)
        lin.encoder.weight.copy_(torch.linalg.solve(A, W.T))
        lin.logvar.copy_(torch.log(model.sigma2 * torch.diagonal(torch.linalg.inv(A))))
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    for k in (1, 7):
        torch.testing.assert_close(importance_weighted_bound(lin, x, k, generator=g), model.log_prob(x))


def test_iw_bound_tightens_with_k_and_stays_below_log_p():
    lin, model, g = _linear_vae_at_posterior(1)
    with torch.no_grad():
        lin.encoder.weight.mul_(0.5)   # a worse q
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    log_p = model.log_prob(x)
    bounds = [importance_weighted_bound(lin, x, k, generator=g).mean() for k in (1, 10, 200)]
    assert bounds[0] < bounds[1] < bounds[2] <= log_p.mean() + 1e-6
    elbo = elbo_estimate(lin, x, 2000, generator=g).mean()
    assert abs(float(elbo - bounds[0])) < 1.0 and float(elbo) < float(log_p.mean())
    naive = importance_weighted_bound(lin, x, 10, proposal="prior", generator=g)
    assert naive.shape == (30,)
    with pytest.raises(ValueError, match="proposal"):
        importance_weighted_bound(lin, x, 3, proposal="uniform")


def test_local_posteriors_improve_the_elbo():
    lin, model, g = _linear_vae_at_posterior(2)
    lin = lin.float()
    with torch.no_grad():
        lin.encoder.weight.mul_(0.3)
    x = torch.randn(10, 5, generator=g)
    q = optimise_local_posteriors(lin, x, steps=100, samples=8, lr=0.05)
    before = elbo_estimate(lin, x, 500, generator=g).mean()
    after = elbo_estimate(lin, x, 500, q=q, generator=g).mean()
    assert after > before + 0.1
    assert after <= model.log_prob(x).mean() + 0.05
    assert all(p.requires_grad for p in lin.parameters() if p is not lin.log_sigma)


# --------------------------------------------------------------------------- gradient estimators

from aecourse.estimators import closed_form_variances, reparameterised_samples, score_function_samples  # noqa: E402


@pytest.mark.parametrize("case,f,wrt,mu,s,omega", [
    ("z^2 / mu", lambda z: z**2, "mu", 0.7, 1.3, 1.0),
    ("z^2 / s", lambda z: z**2, "s", -0.4, 0.8, 1.0),
    ("sin / mu", lambda z: torch.sin(3.0 * z), "mu", 0.3, 0.6, 3.0),
])
def test_estimator_variances_match_closed_forms(case, f, wrt, mu, s, omega):
    g = torch.Generator().manual_seed(0)
    exact = closed_form_variances(case, mu, s, omega)
    n = 400_000
    for samples, key in ((score_function_samples(f, mu, s, n, wrt, g), "score_function"),
                         (reparameterised_samples(f, mu, s, n, wrt, g), "reparameterisation")):
        assert abs(float(samples.mean()) - exact["gradient"]) < 5 * math.sqrt(exact[key] / n)
        assert abs(float(samples.var()) / exact[key] - 1) < 0.06


# --------------------------------------------------------------------------- exercise checks

from aecourse.exercises import NotYet  # noqa: E402
from aecourse.exercises import vae as ex  # noqa: E402


def test_exercise_checks_accept_right_answers_and_explain_wrong_ones(capsys):
    ex.check_kl(lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1))
    ex.check_kl(lambda mu, lv: sum(0.5 * (mu[:, j]**2 + lv[:, j].exp() - lv[:, j] - 1) for j in range(mu.shape[1])))
    with pytest.raises(NotYet, match="NEGATIVE"):
        ex.check_kl(lambda mu, lv: 0.5 * (1 + lv - mu**2 - lv.exp()).sum(1))
    with pytest.raises(NotYet, match="one value per latent"):
        ex.check_kl(lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1))
    ex.check_iw_bound(lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]))
    with pytest.raises(NotYet, match="underflow"):
        ex.check_iw_bound(lambda lw: lw.exp().mean(1).log())
    with pytest.raises(NotYet, match="ELBO"):
        ex.check_iw_bound(lambda lw: lw.mean(1))
    with pytest.raises(NotYet, match="divide by K"):
        ex.check_iw_bound(lambda lw: torch.logsumexp(lw, 1))

    def score(f, mu, s, n, generator):
        z = mu + s * torch.randn(n, generator=generator, dtype=torch.float64)
        return f(z) * (z - mu) / s**2
    ex.check_score_function(score)
    with pytest.raises(NotYet, match="biased"):
        ex.check_score_function(lambda f, mu, s, n, generator: f(mu + s * torch.randn(n, generator=generator)))
    with pytest.raises(NotYet, match="NotImplementedError"):
        def stub(f, mu, s, n, generator):
            raise NotImplementedError
        ex.check_score_function(stub)
    assert "Correct" in capsys.readouterr().out


# --------------------------------------------------------------------------- the code the chapter shows

def _shown_code(marker: str) -> str:
    import json
    from pathlib import Path
    nb = json.loads((Path(__file__).parents[1] / "book" / "vae.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and marker in src:
            block = src.split("```python\n", 1)[1].split("```", 1)[0]
            if marker in block:
                return block
    raise AssertionError(f"the chapter no longer shows {marker!r}")


def test_shown_reparameterize_and_elbo_agree_with_the_package():
    ns: dict = {"torch": torch}
    exec(_shown_code("def reparameterize(mu, logvar):"), ns)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    torch.manual_seed(5)
    shown = ns["reparameterize"](mu, logvar)
    torch.manual_seed(5)
    torch.testing.assert_close(shown, VAE.reparameterize(mu, logvar))

    torch.manual_seed(0)
    model = VAE((1, 4, 4), code_dim=2, hidden=(8,))
    x = torch.rand(6, 1, 4, 4).bernoulli()
    ns = {"model": model, "x": x, "beta": 1.0, "bernoulli_nll": bernoulli_nll,
          "kl_standard_normal": kl_standard_normal}
    torch.manual_seed(1)
    exec(_shown_code("z = model.reparameterize(mu, logvar)"), ns)
    torch.manual_seed(1)
    torch.testing.assert_close(ns["loss"], ELBO()(model, x)["loss"])


def test_linear_vae_chunked_elbo_matches_the_objective():
    torch.manual_seed(0)
    lin = LinearVAE(6, 2, sigma=0.8)
    x = torch.randn(50, 6)
    torch.testing.assert_close(lin.elbo(x, chunk=7).mean(), -AnalyticELBO()(lin, x)["loss"].detach())
    model, g = _random_ppca(4)
    xx = torch.randn(30, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(model.log_prob(xx, chunk=4), model.log_prob(xx))
    mean, cov = data_covariance(xx, chunk=7)
    torch.testing.assert_close(cov, torch.cov(xx.T, correction=0))


def test_constant_variance_vae_is_a_regularised_noisy_autoencoder():
    """With q = N(f(x), I) and p(x|z) = N(g(z), s^2 I): -ELBO = (||x - g(f+eps)||^2 + s^2 ||f||^2) / (2 s^2) + const."""
    torch.manual_seed(0)
    model = VAE((1, 6, 6), code_dim=3, hidden=(8,), likelihood="gaussian")
    x, s = torch.rand(5, 1, 6, 6, dtype=torch.float64), 0.4
    model = model.double()
    with torch.no_grad():
        f = model.encode(x)[0]
        eps = torch.randn_like(f)
        g = model.decode(f + eps)
        neg_elbo = gaussian_nll(g, x, s) + kl_standard_normal(f, torch.zeros_like(f))
        rae = ((g - x) ** 2).flatten(1).sum(1) + s**2 * (f**2).sum(1)
        const = 0.5 * 36 * math.log(2 * math.pi * s**2)
    torch.testing.assert_close(neg_elbo, rae / (2 * s**2) + const)
