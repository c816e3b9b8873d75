import math

import pytest
import torch

from aecourse import data as D
from aecourse.data import images


def test_digits_have_the_chapters_shape_and_range():
    d = D.load_images("digits", verbose=False)
    assert d.x_train.shape[1:] == (1, 28, 28) and d.x_test.shape[1:] == (1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert len(d.x_train) + len(d.x_test) == 1797
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    assert float(d.x_train.max()) > 0.9  # strokes reach full intensity
    assert set(d.y_train.tolist()) == set(range(10))
    assert d.flat("test").shape == (len(d.x_test), 784)
    # the 4-pixel frame is empty, as in MNIST
    assert float(d.x_train[:, :, :4].abs().max()) == 0.0


def test_digits_span_at_most_64_dimensions():
    d = D.load_images("digits", verbose=False)
    rank = torch.linalg.matrix_rank(d.flat("train").double(), rtol=1e-6)  # float32 rounding sits below
    assert rank <= 64


def test_offline_fallback_says_why(monkeypatch, capsys):
    def no_network(key, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz") from OSError("no route")

    monkeypatch.setattr(images, "_torchvision", no_network)
    d = D.load_images("mnist")
    out = capsys.readouterr().out.strip().splitlines()
    assert d.key == "digits"
    assert len(out) == 1 and "scikit-learn digits" in out[0] and "MNIST could not be obtained" in out[0]


def test_no_fallback_is_a_clear_error(monkeypatch):
    def no_network(key, download):
        raise RuntimeError("Error downloading") from OSError("Network is unreachable")

    monkeypatch.setattr(images, "_torchvision", no_network)
    with pytest.raises(D.DataUnavailableError) as err:
        D.load_images("fashion-mnist", fallback=False, verbose=False)
    msg = str(err.value)
    assert "Fashion-MNIST" in msg and "connect to the internet" in msg and "load_images('digits')" in msg
    assert err.value.__cause__ is None  # no stack of urllib tracebacks


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set"):
        D.load_images("cifar", verbose=False)


def test_environment_chooses_the_dataset(monkeypatch):
    monkeypatch.setenv("AECOURSE_DATASET", "digits")
    assert D.load_images(verbose=False).key == "digits"


def test_torchvision_path_returns_in_memory_tensors(monkeypatch, tmp_path):
    """The MNIST path, on files written in MNIST's own format (no network needed)."""
    import gzip
    import struct

    from torchvision import datasets

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def write(name, magic, arr):
        with open(raw / name, "wb") as f:
            f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in arr.shape))
            f.write(arr.numpy().tobytes())

    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        write(f"{prefix}-images-idx3-ubyte", 0x00000803, torch.randint(0, 256, (n, 28, 28), generator=g,
                                                                          dtype=torch.uint8))
        write(f"{prefix}-labels-idx1-ubyte", 0x00000801, torch.randint(0, 10, (n,), generator=g,
                                                                          dtype=torch.uint8))
    monkeypatch.setenv("AECOURSE_DATA", str(tmp_path))
    monkeypatch.setattr(datasets.MNIST, "_check_exists", lambda self: True)
    d = D.load_images("mnist", download=False, fallback=False, verbose=False)
    assert d.key == "mnist" and d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (5, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and 0.0 <= float(d.x_train.min()) <= float(d.x_train.max()) <= 1.0
    del gzip


def test_standin_has_mnist_shape():
    d = D.standin_data(n_train=100, n_test=10)
    assert d.is_standin and d.x_train.shape == (100, 1, 28, 28)


def test_subset_is_reproducible():
    d = D.load_images("digits", verbose=False)
    a, b = d.subset(100, 20, seed=3), d.subset(100, 20, seed=3)
    assert torch.equal(a.x_train, b.x_train) and len(a.x_test) == 20


# --------------------------------------------------------------- 2-D distributions


def test_ring_mixture_density_integrates_to_one():
    m = D.ring_mixture(n_components=6, radius=1.5, std=0.3)
    pts, _, _ = D.grid(lim=4.0, n=301)
    cell = (8.0 / 300) ** 2
    assert math.isclose(float(m.log_prob(pts).exp().sum() * cell), 1.0, rel_tol=1e-3)


def test_score_matches_autograd_and_convolution_adds_variance():
    m = D.ring_mixture()
    x = torch.randn(50, 2) * 2
    x.requires_grad_(True)
    for mix in (m, m.convolve(0.5)):
        (g,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
        assert torch.allclose(mix.score(x.detach()), g, atol=1e-4)
    assert math.isclose(m.convolve(0.5).std, math.sqrt(0.15**2 + 0.25))


def test_tweedie_posterior_mean_matches_monte_carlo():
    """E[x | x~] computed by Tweedie's formula equals the Monte Carlo conditional mean."""
    m = D.ring_mixture(n_components=4, radius=1.0, std=0.2)
    sigma = 0.4
    g = torch.Generator().manual_seed(0)
    x = m.sample(400_000, generator=g)
    noisy = x + sigma * torch.randn(x.shape, generator=g)
    query = torch.tensor([[0.6, 0.1], [-0.2, -0.9]])
    for q in query:
        near = (noisy - q).norm(dim=1) < 0.05
        mc = x[near].mean(dim=0)
        exact = m.posterior_mean(q[None], sigma)[0]
        assert torch.allclose(mc, exact, atol=0.03), (mc, exact)


def test_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError):
        D.GaussianMixture2D(torch.zeros(3, 3), 1.0, torch.full((3,), 1 / 3))
    with pytest.raises(ValueError):
        D.GaussianMixture2D(torch.zeros(3, 2), 1.0, torch.tensor([0.5, 0.5, 0.5]))
