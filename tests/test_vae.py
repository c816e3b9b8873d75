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
