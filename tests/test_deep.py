"""Deep autoencoders chapter: the convolutional autoencoder, the metrics and plots it uses,
the latent explorer, and the exercise checks."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

from aecourse import plots  # noqa: E402
from aecourse.exercises import NotYet  # noqa: E402
from aecourse.exercises import deep as ex  # noqa: E402
from aecourse.metrics import knn_accuracy, nearest_neighbours, pca, reconstruction_errors  # noqa: E402
from aecourse.models import ConvAutoencoder, MLPAutoencoder, n_parameters  # noqa: E402
from aecourse.models.conv import conv_output_size, conv_transpose_output_size  # noqa: E402
from aecourse.objectives import squared_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the model


def test_conv_autoencoder_shapes_for_images_and_flat_rows():
    model = ConvAutoencoder(code_dim=5, channels=(4, 6), hidden=16)
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, 5)
    assert model.decode(z).shape == (3, 1, 28, 28)
    assert model(x).shape == x.shape
    flat = x.reshape(3, 784)
    assert torch.allclose(model(flat), model(x).reshape(3, 784))
    assert model.feature_shape == (6, 7, 7)
    # the convolutional part of the encoder really produces the feature maps it announces
    assert model.encoder[:4](x).shape == (3, *model.feature_shape)


def test_conv_autoencoder_other_sizes_and_no_hidden_layer():
    model = ConvAutoencoder(input_shape=(3, 16, 12), code_dim=2, channels=(2, 3), hidden=None)
    x = torch.rand(2, 3, 16, 12)
    assert model(x).shape == x.shape
    assert not any(isinstance(m, nn.Linear) and m.out_features == 64 for m in model.modules())
    out = model(x)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid output


def test_conv_autoencoder_parameter_count_follows_the_formula():
    c1, c2, h, m, side = 8, 16, 64, 8, 28
    f = c2 * (side // 4) ** 2
    expected = (c1 * (1 * 9 + 1) + c2 * (c1 * 9 + 1)      # two convolutions
                + f * h + h + h * m + m                     # to the code
                + m * h + h + h * f + f                     # from the code
                + c1 * (c2 * 9) + c1 + 1 * (c1 * 9)          # transposed convolutions (last one without bias)
                + side * side)                              # one bias per output pixel
    assert n_parameters(ConvAutoencoder(code_dim=m, channels=(c1, c2), hidden=h)) == expected


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_shape=(1, 30, 30)), "divisible by 4"),
    (dict(input_shape=(784,)), "channels, height, width"),
    (dict(code_dim=0), "code_dim"),
    (dict(channels=(8,)), "channels"),
    (dict(hidden=0), "hidden"),
])
def test_conv_autoencoder_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvAutoencoder(**kwargs)


def test_conv_autoencoder_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match="expects inputs of shape"):
        ConvAutoencoder(code_dim=2)(torch.rand(2, 1, 27, 27))


def test_conv_autoencoder_gradients_are_exact():
    torch.manual_seed(0)
    model = ConvAutoencoder(input_shape=(1, 8, 8), code_dim=2, channels=(2, 2), hidden=3).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x), (x,), eps=1e-6, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3), op=st.integers(0, 3))
def test_output_size_formulas_match_pytorch(n, k, s, p, op):
    x = torch.zeros(1, 1, n, n)
    if n + 2 * p >= k:
        assert conv_output_size(n, k, s, p) == nn.Conv2d(1, 1, k, stride=s, padding=p)(x).shape[-1]
    if op < s and p < k and conv_transpose_output_size(n, k, s, p, op) > 0:
        layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
        assert conv_transpose_output_size(n, k, s, p, op) == layer(x).shape[-1]


# --------------------------------------------------------------------------- metrics


def test_reconstruction_errors_agree_with_squared_error_and_pca_is_exact_at_full_rank():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 1, 4, 4, generator=g)
    model = MLPAutoencoder((1, 4, 4), code_dim=3, hidden=(8,))
    with torch.no_grad():
        expected = squared_error(model(x), x)
    assert torch.allclose(reconstruction_errors(model, x, batch_size=7), expected)
    p = pca(x)
    assert reconstruction_errors(lambda v: p.reconstruct(v, 16), x).max() < 1e-8
    # and at rank k the mean error is the sum of the discarded eigenvalues (Eckart-Young)
    assert reconstruction_errors(lambda v: p.reconstruct(v, 5), x).mean() == pytest.approx(p.optimal_error(5), rel=1e-4)
    with pytest.raises(ValueError, match="must return x's shape"):
        reconstruction_errors(lambda v: v.reshape(len(v), -1), x)


def test_nearest_neighbours_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(40, 1, 5, 5, generator=g)
    x = torch.cat([torch.rand(11, 1, 5, 5, generator=g), ref[[3, 17]]])
    d, i = nearest_neighbours(x, ref, batch_size=4)
    brute = torch.cdist(x.flatten(1).double(), ref.flatten(1).double()) ** 2
    assert torch.allclose(d.double(), brute.min(dim=1).values, atol=1e-4)
    assert torch.equal(i, brute.argmin(dim=1))
    assert i[-2:].tolist() == [3, 17] and d[-2:].max() < 1e-4
    with pytest.raises(ValueError, match="values per example"):
        nearest_neighbours(torch.rand(2, 3), torch.rand(4, 5))


def test_knn_accuracy_on_separated_and_on_random_labels():
    g = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = torch.arange(300) % 3
    z = centres[y] + 0.5 * torch.randn(300, 2, generator=g)
    assert knn_accuracy(z[:200], y[:200], z[200:], y[200:], k=5) == 1.0
    shuffled = y[torch.randperm(300, generator=g)]
    assert knn_accuracy(z[:200], shuffled[:200], z[200:], shuffled[200:], k=5) < 0.6
    # k = 1 on the training set itself is always right (each point is its own neighbour)
    assert knn_accuracy(z, y, z, y, k=1) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(z, y, z, y, k=0)


# --------------------------------------------------------------------------- plots and the explorer


def _coordinate_decoder(z):
    """Images whose pixels encode the code: left half z1, right half z2 (for orientation tests)."""
    img = torch.zeros(len(z), 1, 4, 4)
    img[:, 0, :, :2] = z[:, :1, None]
    img[:, 0, :, 2:] = z[:, 1:, None]
    return img


def test_decoded_plane_puts_each_image_at_its_code():
    fig, ax = plt.subplots()
    extent = (0.0, 1.0, 0.0, 1.0)
    plots.decoded_plane(_coordinate_decoder, extent, n=3, ax=ax)
    mosaic = ax.images[0].get_array()
    top_left, top_right, bottom_left = mosaic[0, 0], mosaic[0, -1], mosaic[-1, 0]
    assert top_left == pytest.approx(0.0)          # z1 = min at the left
    assert mosaic[0, -1] == pytest.approx(1.0)      # right half of the top-right image shows z2 = max
    assert mosaic[0, 9] == pytest.approx(1.0)       # left half of the top-right image shows z1 = max
    assert mosaic[-1, -1] == pytest.approx(0.0)     # bottom row has z2 = min
    assert bottom_left == pytest.approx(0.0) and top_right == pytest.approx(1.0)
    x0, x1, y0, y1 = ax.images[0].get_extent()
    assert x0 < 0 < 1 < x1 and y0 < 0 < 1 < y1
    plt.close(fig)
    with pytest.raises(ValueError, match="extent"):
        plots.decoded_plane(_coordinate_decoder, (1.0, 0.0, 0.0, 1.0))


def test_code_box_covers_the_codes():
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    x0, x1, y0, y1 = plots.code_box(z, quantile=0.0, margin=0.0)
    expected = (z[:, 0].min(), z[:, 0].max(), z[:, 1].min(), z[:, 1].max())
    assert (x0, x1, y0, y1) == pytest.approx(tuple(float(v) for v in expected))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.code_box(torch.zeros(5, 3))


def test_latent_explorer_decodes_the_slider_position():
    from aecourse.widgets import latent_explorer

    codes = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    w = latent_explorer(_coordinate_decoder, codes, torch.arange(50) % 3)
    s1, s2 = w.children[0].children
    s1.value, s2.value = s1.min, s2.max
    assert torch.allclose(w.state["z"], torch.tensor([s1.min, s2.max]))
    assert w.state["decoded"][0, 0] == pytest.approx(s1.min, abs=1e-6)
    assert w.state["decoded"][0, -1] == pytest.approx(s2.max, abs=1e-6)
    assert s1.min < codes[:, 0].min() and s1.max > codes[:, 0].max()  # the sliders reach beyond the data
    plt.close("all")
    with pytest.raises(ValueError, match="code_dim=2"):
        latent_explorer(_coordinate_decoder, torch.zeros(5, 3))


# --------------------------------------------------------------------------- exercise checks


def test_output_size_check_accepts_right_and_explains_wrong(capsys):
    ex.check_output_sizes(conv_output_size, conv_transpose_output_size)
    assert "Correct" in capsys.readouterr().out
    # another correct answer, written with floats
    ex.check_output_sizes(lambda n, k, s, p: int((n + 2 * p - k) / s) + 1,
                          lambda n, k, s, p, op: (n - 1) * s - 2 * p + k + op)
    with pytest.raises(NotYet, match="nn.Conv2d gives"):
        ex.check_output_sizes(lambda n, k, s, p: (n + 2 * p - k) // s, conv_transpose_output_size)
    with pytest.raises(NotYet, match="nn.ConvTranspose2d gives"):
        ex.check_output_sizes(conv_output_size, lambda n, k, s, p, op: n * s)
    with pytest.raises(NotYet, match="NotImplementedError"):
        ex.check_output_sizes(lambda *a: (_ for _ in ()).throw(NotImplementedError()), conv_transpose_output_size)


def test_pca_path_check():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 28, 28, generator=g)
    p = pca(x)

    def right(p, k, x_a, x_b, steps):
        t = torch.linspace(0, 1, steps).reshape(-1, 1)
        z = (1 - t) * p.encode(x_a[None], k) + t * p.encode(x_b[None], k)
        return p.decode(z).reshape(steps, 1, 28, 28)

    def projected_pixels(p, k, x_a, x_b, steps):  # also right: the same path, by the argument of the exercise
        t = torch.linspace(0, 1, steps).reshape(-1, 1, 1, 1)
        return p.reconstruct((1 - t) * x_a + t * x_b, k)

    ex.check_pca_path(right, p, 6, x[0], x[1])
    ex.check_pca_path(projected_pixels, p, 6, x[0], x[1])
    with pytest.raises(NotYet, match="pixels"):
        ex.check_pca_path(lambda p, k, a, b, s: torch.stack([(1 - t) * a + t * b for t in torch.linspace(0, 1, s)]),
                          p, 6, x[0], x[1])
    with pytest.raises(NotYet, match="from x_b to x_a"):
        ex.check_pca_path(lambda p, k, a, b, s: right(p, k, b, a, s), p, 6, x[0], x[1])
    with pytest.raises(NotYet, match="7 images"):
        ex.check_pca_path(lambda p, k, a, b, s: right(p, k, a, b, s)[:3], p, 6, x[0], x[1])


def test_nearest_distance_check():
    ex.check_nearest_distance(lambda x, r: nearest_neighbours(x, r)[0])
    with pytest.raises(NotYet, match="Euclidean distances"):
        ex.check_nearest_distance(lambda x, r: torch.cdist(x.flatten(1), r.flatten(1)).min(dim=1).values)
    with pytest.raises(NotYet, match="farthest"):
        ex.check_nearest_distance(lambda x, r: (torch.cdist(x.flatten(1), r.flatten(1)) ** 2).max(dim=1).values)
    with pytest.raises(NotYet, match="one distance per image"):
        ex.check_nearest_distance(lambda x, r: torch.cdist(x.flatten(1), r.flatten(1)) ** 2)


# --------------------------------------------------------------------------- the notebook


def _notebook():
    return nbformat.read(ROOT / "book" / "deep.ipynb", as_version=4)


def test_notebook_solutions_pass_their_checks():
    """The solution code of the exercises, run as shown, passes the checks."""
    code = "\n".join(c.source for c in _notebook().cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source)
    ns: dict = {"torch": torch}
    exec(code, ns)
    ex.check_output_sizes(ns["conv_size"], ns["conv_transpose_size"])
    ex.check_nearest_distance(ns["nearest_distance"])
    x = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    ex.check_pca_path(ns["pca_path"], pca(x), 4, x[0], x[1])


def test_notebook_shown_conv_settings_match_the_package_defaults_it_describes():
    """The text derives the encoder's convolution parameters (1,248) from channels (8, 16); the code uses them."""
    source = "\n".join(c.source for c in _notebook().cells)
    assert "8 \\cdot (1 \\cdot 9 + 1) + 16 \\cdot (8 \\cdot 9 + 1) = 1{,}248" in source
    assert 8 * (1 * 9 + 1) + 16 * (8 * 9 + 1) == 1248
    assert re.search(r"ConvAutoencoder\(code_dim=m, channels=\(8, 16\)\)", source)
    conv = ConvAutoencoder(code_dim=8, channels=(8, 16))
    assert sum(p.numel() for p in conv.encoder[:4].parameters()) == 1248


def test_pca_of_large_data_by_covariance_agrees_with_the_svd(monkeypatch):
    """Large tall data sets take the blockwise covariance route; it must give the same PCA."""
    import aecourse.metrics as metrics

    g = torch.Generator().manual_seed(4)
    x = torch.rand(900, 1, 6, 6, generator=g) @ torch.randn(6, 6, generator=g)
    by_svd = pca(x)
    monkeypatch.setattr(metrics, "_PCA_SVD_MAX", 1)
    by_cov = metrics.pca(x)
    assert by_cov.total_variance == pytest.approx(by_svd.total_variance, rel=1e-10)
    assert torch.allclose(by_cov.variances, by_svd.variances, rtol=1e-5, atol=1e-6)
    assert torch.allclose(by_cov.mean, by_svd.mean, atol=1e-6)
    for k in (1, 5, 20):  # same subspaces, so the same reconstructions (signs do not matter)
        assert torch.allclose(by_cov.reconstruct(x, k), by_svd.reconstruct(x, k), atol=1e-4)
    assert by_cov.optimal_error(5) == pytest.approx(by_svd.optimal_error(5), rel=1e-5)
