"""Checks for the exercises of the introduction."""

from __future__ import annotations

from typing import Callable

import torch

from aecourse.exercises import NotYet, call_student, compare_tensors, passed
from aecourse.objectives import squared_error


def check_reconstruction_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(x_hat, x)`` must return the squared error summed over each example, averaged over the batch."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 28, 28, generator=g)
    x_hat = torch.rand(5, 1, 28, 28, generator=g)
    got = call_student(fn, x_hat, x, what="reconstruction_loss(x_hat, x)")
    expected = squared_error(x_hat, x).mean()
    if isinstance(got, torch.Tensor) and got.numel() == 5:
        raise NotYet("you returned one value per example; average them over the batch to get one number")
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        value = float(got)
        if abs(value - float(expected) / 784) < 1e-4 * max(1.0, float(expected) / 784):
            raise NotYet("you averaged over the pixels as well; sum over the pixels of each image, "
                         "then average over the batch")
    compare_tensors(torch.as_tensor(got).reshape(()), expected, "reconstruction_loss", rtol=1e-5)
    passed(f"the loss of this random batch is {float(expected):.4f} (summed over 784 pixels, "
           "averaged over 5 images).")


def check_identity_autoencoder(make: Callable[[int], torch.nn.Module], x: torch.Tensor) -> None:
    """``make(d)`` must return an autoencoder on flat vectors of length ``d`` that reconstructs exactly."""
    d = x[0].numel()
    model = call_student(make, d, what="identity_autoencoder(d)")
    if not isinstance(model, torch.nn.Module):
        raise NotYet(f"identity_autoencoder(d) should return an nn.Module, got {type(model).__name__}")
    flat = x.reshape(len(x), -1)
    with torch.no_grad():
        out = call_student(model, flat, what="your model")
    compare_tensors(out, flat, "the reconstruction", atol=1e-5)
    passed(f"zero reconstruction error on {len(x)} images: with a {d}-wide code the identity is optimal, "
           "and the autoencoder has learned nothing about digits.")


def check_index_code(encode: Callable, decode: Callable, x_train: torch.Tensor, x_test: torch.Tensor) -> dict:
    """``encode`` must map each training image to one number and ``decode`` must map it back exactly.

    Returns the mean squared errors on the training and the test images.
    """
    z = call_student(encode, x_train, what="encode(x_train)")
    z = torch.as_tensor(z)
    if z.shape[0] != len(x_train) or z.reshape(len(x_train), -1).shape[1] != 1:
        raise NotYet(f"encode should give one number per image, shape ({len(x_train)},) or "
                     f"({len(x_train)}, 1); got {tuple(z.shape)}")
    rec = torch.as_tensor(call_student(decode, z, what="decode(encode(x_train))"))
    compare_tensors(rec.reshape(x_train.shape), x_train, "decode(encode(x_train))", atol=1e-6)
    test_rec = torch.as_tensor(call_student(decode, torch.as_tensor(call_student(encode, x_test,
                                                                                    what="encode(x_test)")),
                                            what="decode(encode(x_test))"))
    train_err = float(squared_error(rec.reshape(x_train.shape), x_train).mean())
    test_err = float(squared_error(test_rec.reshape(x_test.shape), x_test).mean())
    passed(f"a one-number code reconstructs all {len(x_train):,} training images exactly "
           f"(error {train_err:.2g}) but not held-out ones (error {test_err:.1f} per image).")
    return {"train": train_err, "test": test_err}
