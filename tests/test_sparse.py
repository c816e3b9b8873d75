"""Tests for the sparse autoencoder chapter: models, penalties, metrics, exercise checks."""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aecourse.exercises import NotYet
from aecourse.exercises import sparse as ex
from aecourse.metrics import active_units, dead_units, feature_roughness, unit_frequencies
from aecourse.models import SparseAutoencoder, TopKAutoencoder
from aecourse.models.sparse import UnitNormLinear, top_k
from aecourse.objectives import KLSparsity, L1Sparsity, Reconstruction, bernoulli_kl, squared_error

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "sparse.ipynb"


def images(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- models


def test_unit_norm_columns_stay_unit_after_a_gradient_step():
    torch.manual_seed(0)
    layer = UnitNormLinear(20, 30)
    for _ in range(3):
        layer.zero_grad()
        layer(torch.randn(16, 20)).pow(2).sum().backward()
        with torch.no_grad():                    # a plain gradient step on the free parameters
            for p in layer.parameters():
                p -= 0.5 * p.grad
        norms = layer.weight.norm(dim=0)
        assert torch.allclose(norms, torch.ones(20), atol=1e-5)


def test_unit_norm_linear_matches_the_formula():
    torch.manual_seed(1)
    layer = UnitNormLinear(5, 7)
    z = torch.randn(3, 5)
    w = layer.v / layer.v.norm(dim=0, keepdim=True)
    assert torch.allclose(layer(z), z @ w.T + layer.bias, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_shapes_and_ranges(activation):
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=100, activation=activation)
    x = images()
    z = model.encode(x)
    assert z.shape == (8, 100)
    assert model(x).shape == x.shape
    assert model(x.flatten(1)).shape == (8, 784)
    assert model.features().shape == (100, 784)
    if activation == "relu":
        assert bool((z >= 0).all())
    else:
        assert bool(((z > 0) & (z < 1)).all())


def test_decoder_is_linear_dictionary():
    """x_hat = b_d + sum_j z_j d_j with d_j the unit-norm features."""
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=50)
    z = torch.rand(4, 50)
    expected = model.decoder.bias + z @ model.features()
    assert torch.allclose(model.decode(z).flatten(1), expected, atol=1e-5)
    assert torch.allclose(model.features().norm(dim=1), torch.ones(50), atol=1e-5)


def test_encoder_subtracts_the_decoder_bias():
    torch.manual_seed(0)
    x = images(16)
    model = SparseAutoencoder(n_hidden=40).init_decoder_bias(x)
    assert torch.allclose(model.decoder.bias, x.flatten(1).mean(dim=0))
    lin = model.encoder[0]
    expected = torch.relu((x.flatten(1) - model.decoder.bias) @ lin.weight.T + lin.bias)
    assert torch.allclose(model.encode(x), expected, atol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_hidden"):
        SparseAutoencoder(n_hidden=0)
    with pytest.raises(ValueError, match="activation"):
        SparseAutoencoder(activation="tanh")
    with pytest.raises(ValueError, match="k must be"):
        TopKAutoencoder(n_hidden=10, k=11)
    with pytest.raises(ValueError, match="expects inputs"):
        SparseAutoencoder(n_hidden=10).encode(torch.rand(2, 1, 8, 8))


# --------------------------------------------------------------------------- top-k


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(0, 10_000))
def test_top_k_keeps_exactly_the_k_largest(k, seed):
    z = torch.randn(5, 12, generator=torch.Generator().manual_seed(seed))
    out = top_k(z, k)
    assert bool(((out != 0).sum(dim=1) == k).all())
    kept_min = torch.where(out != 0, z, torch.full_like(z, math.inf)).min(dim=1).values
    dropped_max = torch.where(out == 0, z, torch.full_like(z, -math.inf)).max(dim=1).values
    assert bool((kept_min >= dropped_max).all())
    assert torch.equal(out[out != 0], z[out != 0])


def test_top_k_gradient_flows_only_to_kept_entries():
    z = torch.tensor([[3.0, -1.0, 2.0, 0.5]], requires_grad=True)
    top_k(z, 2).sum().backward()
    assert torch.equal(z.grad, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))


def test_top_k_refuses_bad_input():
    with pytest.raises(ValueError, match="between 1"):
        top_k(torch.rand(2, 3), 4)
    with pytest.raises(ValueError, match=r"\(N, M\)"):
        top_k(torch.rand(3), 1)


def test_topk_autoencoder_codes_have_at_most_k_active_units():
    torch.manual_seed(0)
    model = TopKAutoencoder(n_hidden=64, k=6).init_decoder_bias(images(32))
    z = model.encode(images(32, seed=1))
    assert bool(((z > 0).sum(dim=1) <= 6).all())
    assert "k=6" in repr(model)   # the cache key sees k


# --------------------------------------------------------------------------- L1 penalty


def test_l1_objective_matches_its_formula():
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=60).init_decoder_bias(images(16))
    x = images(16, seed=2)
    terms = L1Sparsity(weight=0.25)(model, x)
    z = model.encode(x)
    rec = squared_error(model(x), x).mean()
    l1 = z.abs().sum(dim=1).mean()
    assert torch.allclose(terms["reconstruction"], rec)
    assert torch.allclose(terms["l1"], l1)
    assert torch.allclose(terms["loss"], rec + 0.25 * l1)
    assert float(terms["active"]) == pytest.approx(float((z > 0).float().sum(dim=1).mean()))


def test_l1_with_zero_weight_is_the_reconstruction_objective():
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=30)
    x = images()
    assert torch.allclose(L1Sparsity(0.0)(model, x)["loss"], Reconstruction()(model, x)["loss"])


def test_l1_refuses_negative_weight():
    with pytest.raises(ValueError, match="non-negative"):
        L1Sparsity(weight=-1.0)


@pytest.mark.parametrize("c", [0.5, 3.0, 10.0])
def test_rescaling_loophole_without_unit_norm(c):
    """ReLU(a/c) = ReLU(a)/c: shrinking the code and growing a free decoder keeps the
    reconstruction and divides the L1 penalty by c -- why the decoder columns are fixed."""
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=40, unit_norm_decoder=False).init_decoder_bias(images(16))
    x = images(16, seed=3)
    before = L1Sparsity(0.3)(model, x)
    with torch.no_grad():
        model.encoder[0].weight /= c
        model.encoder[0].bias /= c
        model.decoder.weight *= c
    after = L1Sparsity(0.3)(model, x)
    assert torch.allclose(after["reconstruction"], before["reconstruction"], rtol=1e-4)
    assert torch.allclose(after["l1"] * c, before["l1"], rtol=1e-4)


def test_unit_norm_decoder_closes_the_loophole():
    """With unit-norm columns, scaling v does not change the decoder at all."""
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=40)
    z = torch.rand(3, 40)
    out = model.decode(z)
    with torch.no_grad():
        model.decoder.v *= 7.0
    assert torch.allclose(model.decode(z), out, atol=1e-5)


# --------------------------------------------------------------------------- KL penalty


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 0.99), st.floats(0.001, 0.999))
def test_bernoulli_kl_is_nonnegative_and_zero_only_at_rho(rho, rho_hat):
    kl = float(bernoulli_kl(rho, torch.tensor(rho_hat, dtype=torch.float64)))
    assert kl >= -1e-12
    if abs(rho - rho_hat) > 1e-3:
        assert kl > 0
    assert float(bernoulli_kl(rho, torch.tensor(rho, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


def test_bernoulli_kl_matches_monte_carlo():
    rho, rho_hat = 0.1, 0.3
    g = torch.Generator().manual_seed(0)
    b = (torch.rand(400_000, generator=g, dtype=torch.float64) < rho).double()
    log_ratio = b * math.log(rho / rho_hat) + (1 - b) * math.log((1 - rho) / (1 - rho_hat))
    mc = float(log_ratio.mean())
    exact = float(bernoulli_kl(rho, torch.tensor(rho_hat, dtype=torch.float64)))
    assert mc == pytest.approx(exact, abs=4 * float(log_ratio.std()) / math.sqrt(len(b)))


def test_bernoulli_kl_gradient_closed_form_and_gradcheck():
    rho = 0.05
    rho_hat = torch.tensor([0.01, 0.05, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    bernoulli_kl(rho, rho_hat).sum().backward()
    expected = (rho_hat - rho) / (rho_hat * (1 - rho_hat))
    assert torch.allclose(rho_hat.grad, expected.detach())
    assert rho_hat.grad[0] < 0 < rho_hat.grad[2]     # pushes an under-used unit up, an over-used one down
    assert torch.autograd.gradcheck(lambda r: bernoulli_kl(rho, r), (rho_hat.detach().requires_grad_(),))


def test_bernoulli_kl_refuses_bad_rho():
    with pytest.raises(ValueError, match="strictly between"):
        bernoulli_kl(1.0, torch.tensor([0.5]))


def test_kl_objective_matches_its_formula():
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=30, activation="sigmoid")
    x = images(12)
    terms = KLSparsity(rho=0.1, weight=2.0)(model, x)
    z = model.encode(x)
    kl = bernoulli_kl(0.1, z.mean(dim=0)).sum()
    rec = squared_error(model(x), x).mean()
    assert torch.allclose(terms["kl_sparsity"], kl)
    assert torch.allclose(terms["loss"], rec + 2.0 * kl)


def test_kl_penalty_of_batches_is_at_least_the_penalty_of_the_whole():
    """Jensen: the mean of KL(rho || batch mean) over equal batches >= KL(rho || overall mean)."""
    z = torch.rand(64, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3
    whole = bernoulli_kl(0.05, z.mean(dim=0)).sum()
    batches = torch.stack([bernoulli_kl(0.05, b.mean(dim=0)).sum() for b in z.split(8)]).mean()
    assert float(batches) >= float(whole)


def test_kl_objective_refuses_codes_outside_unit_interval():
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=30, activation="relu")
    with torch.no_grad():
        model.encoder[0].bias.fill_(5.0)      # ReLU codes above 1
    with pytest.raises(ValueError, match="sigmoid"):
        KLSparsity()(model, images())
    with pytest.raises(ValueError, match="strictly between"):
        KLSparsity(rho=0.0)


def test_sparsity_objectives_refuse_a_distribution_encoder():
    class Pair(torch.nn.Module):
        def encode(self, x):
            return x.flatten(1), x.flatten(1)

        def decode(self, z):
            return z

    with pytest.raises(TypeError, match="one tensor"):
        L1Sparsity()(Pair(), images())


# --------------------------------------------------------------------------- metrics


def test_unit_counts():
    z = torch.tensor([[0.0, 1.0, 0.0, 0.2], [0.0, 2.0, 3.0, 0.0]])
    assert torch.allclose(unit_frequencies(z), torch.tensor([0.0, 1.0, 0.5, 0.5]))
    assert active_units(z) == pytest.approx(2.0)
    assert dead_units(z) == 1
    assert active_units(z, threshold=0.5) == pytest.approx(1.5)
    assert dead_units(z, threshold=0.5) == 2
    with pytest.raises(ValueError, match=r"\(N, M\)"):
        active_units(torch.rand(5))


def test_feature_roughness_known_values():
    assert torch.allclose(feature_roughness(torch.ones(2, 784)), torch.zeros(2))
    i, j = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    checker = ((-1.0) ** (i + j)).reshape(1, 784)
    # every one of the 2*28*27 neighbour pairs differs by 2; sum of squares is 784
    assert float(feature_roughness(checker)) == pytest.approx(4 * 2 * 28 * 27 / 784)
    noise = torch.randn(200, 784, generator=torch.Generator().manual_seed(0))
    assert float(feature_roughness(noise).mean()) == pytest.approx(4 * 27 / 28, rel=0.02)
    with pytest.raises(ValueError, match="shape"):
        feature_roughness(torch.rand(3, 100))


def test_training_a_sparse_model_reduces_active_units():
    """A few steps of the L1 objective already give fewer active units than none."""
    from aecourse import fit

    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * (torch.rand(64, 1, 1, 1) > 0.5)
    counts = {}
    for lam in (0.0, 3.0):
        torch.manual_seed(0)
        model = SparseAutoencoder(n_hidden=64).init_decoder_bias(x)
        fit(model, L1Sparsity(lam), x, epochs=20, batch_size=32, lr=3e-3, progress=False, device="cpu")
        counts[lam] = active_units(model.encode(x).detach())
    assert counts[3.0] < 0.5 * counts[0.0]


# --------------------------------------------------------------------------- exercise checks


def test_exercise_checks_accept_correct_answers(capsys):
    ex.check_l1_objective(lambda x_hat, x, z, lam: ((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean()
                          + lam * z.abs().sum(dim=1).mean())
    ex.check_kl_sparsity(lambda z, rho: bernoulli_kl(rho, z.mean(0)).sum())
    ex.check_top_k(lambda z, k: top_k(z, k))
    # a different correct top-k: a mask from argsort
    def by_sort(z, k):
        idx = z.argsort(dim=1, descending=True)[:, :k]
        mask = torch.zeros_like(z, dtype=torch.bool).scatter(1, idx, True)
        return z * mask
    ex.check_top_k(by_sort)
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=32)
    x = images(6)
    value = ex.check_truncated_error(
        lambda m, xs, k: squared_error(m.decode(top_k(m.encode(xs), k)).reshape(xs.shape), xs).mean(), model, x, 3)
    assert value > 0
    assert capsys.readouterr().out.count("Correct") == 5


def test_exercise_checks_explain_common_mistakes():
    with pytest.raises(NotYet, match="averaged the penalty over the units"):
        ex.check_l1_objective(lambda x_hat, x, z, lam: ((x_hat - x) ** 2).sum(dim=(1, 2, 3)).mean()
                              + lam * z.abs().mean(dim=1).mean())
    def reversed_kl(z, rho):
        r = z.mean(dim=0)
        return (r * torch.log(r / rho) + (1 - r) * torch.log((1 - r) / (1 - rho))).sum()

    with pytest.raises(NotYet, match="reversed"):
        ex.check_kl_sparsity(reversed_kl)
    with pytest.raises(NotYet, match="per example"):
        ex.check_kl_sparsity(lambda z, rho: bernoulli_kl(rho, z).sum(dim=1).mean())
    with pytest.raises(NotYet, match="each row"):
        ex.check_top_k(lambda z, k: torch.where(z >= z.flatten().topk(k * len(z)).values[-1], z, torch.zeros_like(z)))
    with pytest.raises(NotYet, match="NotImplementedError"):
        def stub(z, k):
            raise NotImplementedError
        ex.check_top_k(stub)


# --------------------------------------------------------------------------- the notebook shows the package's code


def _notebook_markdown() -> str:
    nb = json.loads(NOTEBOOK.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_notebook_l1_snippet_agrees_with_the_package():
    md = _notebook_markdown()
    blocks = re.findall(r"```python\n(.*?)```", md, re.S)
    snippet = next(b for b in blocks if "def __call__(self, model, x):" in b and "l1" in b)
    namespace: dict = {}
    exec(snippet, namespace)

    class Holder:
        weight = 0.4

    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=50).init_decoder_bias(images(8))
    x = images(8, seed=5)
    shown = namespace["__call__"](Holder(), model, x)
    package = L1Sparsity(0.4)(model, x)
    for term in ("loss", "reconstruction", "l1"):
        assert torch.allclose(shown[term], package[term])


def test_notebook_top_k_snippet_is_the_package_code():
    md = _notebook_markdown()
    source = inspect.getsource(top_k)
    for line in ("values, indices = z.topk(k, dim=1)", "return torch.zeros_like(z).scatter(1, indices, values)"):
        assert line in md and line in source
