"""Checks for the exercises of the chapter on deep autoencoders."""

from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import nn

from aecourse.exercises import NotYet, as_answer_tensor, call_student, compare_tensors, passed


def _as_int(value, what: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NotYet(f"{what} should return a whole number of pixels (an int), got {value!r}")
    return value


def check_output_sizes(conv_size: Callable[[int, int, int, int], int],
                       conv_transpose_size: Callable[[int, int, int, int, int], int]) -> None:
    """``conv_size(n, k, s, p)`` and ``conv_transpose_size(n, k, s, p, op)`` must give the side length
    that ``nn.Conv2d`` and ``nn.ConvTranspose2d`` produce, for every setting tried."""
    tried = 0
    for n, k, s, p in itertools.product((7, 28), (1, 2, 3, 4, 5), (1, 2, 3), (0, 1, 2)):
        if n + 2 * p < k:
            continue
        x = torch.zeros(1, 1, n, n)
        want = nn.Conv2d(1, 1, k, stride=s, padding=p)(x).shape[-1]
        got = _as_int(call_student(conv_size, n, k, s, p, what=f"conv_size({n}, {k}, {s}, {p})"),
                      "conv_size")
        if got != want:
            raise NotYet(f"conv_size(n={n}, kernel={k}, stride={s}, padding={p}) gave {got}, but nn.Conv2d "
                         f"gives {want}. Count where the kernel can start: the padded side has n + 2p "
                         "pixels, and the kernel moves s pixels at a time (round down).")
        for op in range(s):
            if p >= k:
                continue
            want_t = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)(x).shape[-1]
            got_t = _as_int(call_student(conv_transpose_size, n, k, s, p, op,
                                         what=f"conv_transpose_size({n}, {k}, {s}, {p}, {op})"),
                            "conv_transpose_size")
            if got_t != want_t:
                raise NotYet(f"conv_transpose_size(n={n}, kernel={k}, stride={s}, padding={p}, "
                             f"output_padding={op}) gave {got_t}, but nn.ConvTranspose2d gives {want_t}. "
                             "A transposed convolution places n inputs s pixels apart and spreads each "
                             "over k pixels; padding then trims p from each side and output_padding adds "
                             "to one side.")
            tried += 1
    passed(f"both formulas agree with PyTorch's layers on {tried} settings: with kernel 3, stride 2 "
           "and padding 1 a convolution halves 28 to 14 and 14 to 7, and the transposed one "
           "(output_padding 1) doubles them back.")


def check_pca_path(pca_path: Callable, p, k: int, x_a: torch.Tensor, x_b: torch.Tensor,
                   steps: int = 7) -> torch.Tensor:
    """``pca_path(p, k, x_a, x_b, steps)`` must decode ``steps`` evenly spaced points on the segment from
    ``p.encode(x_a, k)`` to ``p.encode(x_b, k)``, both ends included. Returns the student's images."""
    got = call_student(pca_path, p, k, x_a, x_b, steps, what="pca_path(p, k, x_a, x_b, steps)")
    if not isinstance(got, torch.Tensor):
        raise NotYet(f"pca_path should return a tensor of images, got {type(got).__name__}")
    shape = (steps, *x_a.shape[-3:])
    if got.numel() != steps * x_a.numel():
        raise NotYet(f"expected {steps} images of shape {tuple(shape[1:])}, got a tensor of shape {tuple(got.shape)}")
    got = got.detach().cpu().reshape(shape).double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64).reshape(-1, 1)
    z_a = p.encode(x_a.reshape(1, -1), k).double()
    z_b = p.encode(x_b.reshape(1, -1), k).double()
    expected = (((1 - t) * z_a + t * z_b) @ p.components[:k].double() + p.mean.double()).reshape(shape)
    t4 = t.reshape(-1, 1, 1, 1)
    pixel_mix = (1 - t4) * x_a.reshape(1, *shape[1:]).double() + t4 * x_b.reshape(1, *shape[1:]).double()
    if torch.allclose(got, pixel_mix, atol=1e-4) and not torch.allclose(got, expected, atol=1e-4):
        raise NotYet("these are mixtures of the two images' pixels; mix their PCA codes instead and decode")
    if torch.allclose(got, expected.flip(0), atol=1e-4) and not torch.allclose(got, expected, atol=1e-4):
        raise NotYet("the path runs from x_b to x_a; start at x_a (t = 0) and end at x_b (t = 1)")
    compare_tensors(got, expected, "the decoded path", atol=1e-4)
    projected = pixel_mix.reshape(steps, -1) - p.mean.double()
    projected = (projected @ p.components[:k].double().T @ p.components[:k].double() + p.mean.double())
    gap = float((got - projected.reshape(shape)).abs().max())
    passed(f"{steps} images along the path in PCA's {k}-number code. They differ from the projections of "
           f"the pixel-space mixtures by at most {gap:.1e}: for an affine code, mixing codes is the same as "
           "mixing pixels and projecting.")
    return got


def check_nearest_distance(nearest_distance: Callable) -> None:
    """``nearest_distance(x, reference)`` must return, for each image in ``x``, the squared Euclidean
    distance to the nearest image in ``reference`` (shape ``(len(x),)``)."""
    g = torch.Generator().manual_seed(3)
    reference = torch.rand(50, 1, 6, 6, generator=g)
    x = torch.cat([torch.rand(19, 1, 6, 6, generator=g), reference[7:8]])  # the last one is in the reference
    got = call_student(nearest_distance, x, reference, what="nearest_distance(x, reference)")
    got = as_answer_tensor(got, "nearest_distance")
    flat_x, flat_r = x.reshape(len(x), -1).double(), reference.reshape(len(reference), -1).double()
    expected = ((flat_x[:, None, :] - flat_r[None, :, :]) ** 2).sum(dim=2).min(dim=1).values
    if got.numel() != len(x):
        raise NotYet(f"expected one distance per image in x, shape ({len(x)},); got shape {tuple(got.shape)}")
    got = got.reshape(-1).double()
    if torch.allclose(got, expected.sqrt(), atol=1e-2) and not torch.allclose(got, expected, atol=1e-3):
        raise NotYet("these are Euclidean distances; return their squares, on the scale of the "
                     "reconstruction error")
    farthest = ((flat_x[:, None, :] - flat_r[None, :, :]) ** 2).sum(dim=2).max(dim=1).values
    if torch.allclose(got, farthest, atol=1e-3):
        raise NotYet("these are the distances to the farthest reference image; take the minimum")
    compare_tensors(got, expected, "the nearest distances", atol=1e-4)
    if abs(float(got[-1])) > 1e-4:
        raise NotYet("an image that is itself in the reference set should be at distance 0")
    passed("squared distances to the nearest reference image, 0 for an image that is in the reference set.")
