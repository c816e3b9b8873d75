"""Checks for the exercises of the chapter on masked autoencoders."""

from __future__ import annotations

from typing import Callable

import torch

from aecourse.exercises import NotYet, call_student, compare_tensors, passed
from aecourse.metrics import count_flops
from aecourse.models import masked as mae


def check_patchify(patchify: Callable, unpatchify: Callable) -> None:
    """``patchify(x, p)`` must cut ``(B, C, H, W)`` images into ``(B, N, C*p*p)`` patches numbered row by
    row, and ``unpatchify(patches, p, (C, H, W))`` must undo it exactly."""
    g = torch.Generator().manual_seed(0)
    for shape, p in [((3, 1, 28, 28), 7), ((2, 1, 28, 28), 4), ((2, 1, 12, 8), 2)]:
        x = torch.rand(*shape, generator=g)
        got = call_student(patchify, x, p, what=f"patchify(x, {p})")
        expected = mae.patchify(x, p)
        if not isinstance(got, torch.Tensor):
            raise NotYet(f"patchify should return a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            raise NotYet(f"for images of shape {shape} and p={p}, patchify should give shape "
                         f"{tuple(expected.shape)} (batch, patches, pixels per patch); got {tuple(got.shape)}")
        if not torch.equal(got, expected):
            same_values = torch.equal(got.sort(dim=-1).values.sort(dim=1).values,
                                      expected.sort(dim=-1).values.sort(dim=1).values)
            if torch.equal(got.sum(-1).sort(dim=1).values, expected.sum(-1).sort(dim=1).values):
                hint = ("each patch holds the right pixels but the patches are in a different order, or their "
                        "pixels are: number patches row by row (left to right, then down) and keep the pixels "
                        "of a patch in row-major order")
            elif same_values:
                hint = "the right values, but your patches mix pixels from different p x p squares"
            else:
                hint = "the values differ from the image's pixels: patchify should only rearrange them"
            raise NotYet(f"patchify(x, {p}) for images {shape}: {hint}.")
        back = call_student(unpatchify, got, p, tuple(shape[1:]), what=f"unpatchify(patches, {p}, {shape[1:]})")
        compare_tensors(back, x, "unpatchify(patchify(x))", rtol=0, atol=0)
    passed("patchify numbers the patches row by row, and unpatchify(patchify(x)) == x exactly, "
           "for several image and patch sizes.")


def check_random_mask(random_mask: Callable) -> None:
    """``random_mask(batch, n_patches, ratio, generator)`` must return a boolean ``(batch, n_patches)``
    mask, ``True`` for removed patches, removing ``round(ratio * n)`` uniformly chosen patches per row,
    the same for the same seed."""

    def run(b, n, r, seed):
        g = torch.Generator().manual_seed(seed)
        m = call_student(random_mask, b, n, r, g, what=f"random_mask({b}, {n}, {r}, generator)")
        if not isinstance(m, torch.Tensor):
            raise NotYet(f"random_mask should return a tensor, got {type(m).__name__}")
        if m.shape != (b, n):
            raise NotYet(f"random_mask({b}, {n}, ...) should have shape ({b}, {n}), got {tuple(m.shape)}")
        if m.dtype != torch.bool:
            if not ((m == 0) | (m == 1)).all():
                raise NotYet("the mask should hold True/False (or 1/0) values only")
            m = m.bool()
        return m

    for n, r in [(16, 0.75), (49, 0.25), (49, 0.9), (16, 0.5)]:
        m = run(64, n, r, 0)
        want = n - mae.n_visible(n, r)
        counts = m.sum(dim=1)
        if not (counts == want).all():
            if (counts == n - want).all():
                raise NotYet(f"with ratio {r} each row should have {want} True (masked) entries, but has "
                             f"{n - want}: True should mark the removed patches, not the kept ones")
            raise NotYet(f"with n={n} and ratio {r} every row should mask exactly {want} patches "
                         f"(round(ratio * n)); your rows mask between {int(counts.min())} and {int(counts.max())}")
    a, b, c = run(32, 16, 0.75, 1), run(32, 16, 0.75, 1), run(32, 16, 0.75, 2)
    if not torch.equal(a, b):
        raise NotYet("two calls with generators of the same seed gave different masks: draw all randomness "
                     "from the generator you are given (e.g. torch.rand(..., generator=generator))")
    if torch.equal(a, c):
        raise NotYet("generators with different seeds gave the same mask: the mask should be random")
    if len({tuple(row.tolist()) for row in a}) < 16:
        raise NotYet("the rows of one batch are (nearly) all the same mask; each image needs its own")
    freq = run(4000, 16, 0.75, 3).float().mean(dim=0)
    if (freq - 0.75).abs().max() > 0.05:
        raise NotYet(f"some patches are masked more often than others (frequencies from {float(freq.min()):.2f} "
                     f"to {float(freq.max()):.2f}, expected about 0.75 each): choose the patches uniformly")
    passed("a fixed number of patches per image, every patch equally likely, and the same mask for the same seed.")


def check_layer_macs(layer_macs: Callable) -> None:
    """``layer_macs(n, d)`` must return the multiply-adds of one transformer layer (4x MLP) on ``n`` tokens of
    width ``d``; compared with a FLOP counter run on a real layer (two FLOPs per multiply-add)."""
    for n, d, heads in [(16, 64, 4), (49, 32, 2), (5, 128, 8), (200, 16, 1)]:
        got = call_student(layer_macs, n, d, what=f"layer_macs({n}, {d})")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise NotYet(f"layer_macs should return a number, got {type(got).__name__}") from None
        measured = count_flops(mae.Block(d, heads), torch.zeros(1, n, d)) / 2
        if abs(got - measured) <= 1e-9 * measured:
            continue
        if abs(got - 2 * measured) <= 1e-9 * measured:
            raise NotYet("you counted FLOPs (two per multiply-add); return multiply-adds")
        linear, quadratic = 12 * n * d * d, 2 * n * n * d
        if abs(got - linear) <= 1e-9 * measured:
            raise NotYet("you have the projections and the MLP but not the attention itself: the scores "
                         "Q K^T and the weighted sum of the values are N x N x d multiply-adds each")
        if abs(got - quadratic) <= 1e-9 * measured:
            raise NotYet("you have the attention products but not the linear layers (Q, K, V, output, MLP)")
        raise NotYet(f"for N={n} tokens of width d={d} a layer does {measured:,.0f} multiply-adds "
                     f"(measured); your count is {got:,.0f}")
    passed("your count matches the FLOP counter on real layers: 12 N d^2 + 2 N^2 d multiply-adds.")
