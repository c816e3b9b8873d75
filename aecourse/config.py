"""Run-time settings shared by every chapter: quick mode, device, data directory, seeds.

Everything here is read from environment variables at call time, so a notebook,
a test and the book build all see the same switches:

``AECOURSE_QUICK=1``
    Quick mode: chapters train for a few epochs on small subsets. The test
    command sets it; the website is built without it.
``AECOURSE_DEVICE``
    Force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``). Default: CUDA, then
    Apple MPS, then CPU.
``AECOURSE_DATA``
    Where data sets and checkpoints are kept. Default: ``$XDG_CACHE_HOME/aecourse``
    or ``~/.cache/aecourse`` -- outside the repository, so a clone stays clean.
``AECOURSE_PROGRESS=0``
    No progress bars (the book build sets it so bars do not litter the site).
``AECOURSE_CHECKPOINTS=0``
    Never reuse cached training runs (the test command sets it, so every test trains).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"environment variable {name}={raw!r} is not understood: use 1 or 0 (true/false)."
    )


def is_quick() -> bool:
    """True in quick mode (``AECOURSE_QUICK=1``): small budgets for tests and CI."""
    return _flag("AECOURSE_QUICK")


def budget(full: T, quick: T) -> T:
    """Pick a training budget: ``full`` normally, ``quick`` in quick mode.

    >>> epochs = budget(full=30, quick=2)
    """
    return quick if is_quick() else full


def epochs_for(steps: int, n_train: int, batch_size: int, *, min_epochs: int = 1,
               max_epochs: int | None = None) -> int:
    """Epochs that give about ``steps`` optimiser steps on ``n_train`` examples.

    A budget in steps, not epochs, trains as long on MNIST's 60,000 images as on
    the 1,437 offline digits: ``epochs_for(budget(full=6000, quick=150), len(x), 128)``.
    """
    if steps < 1 or n_train < 1 or batch_size < 1:
        raise ValueError("steps, n_train and batch_size must be positive")
    per_epoch = -(-n_train // batch_size)
    epochs = max(min_epochs, round(steps / per_epoch))
    return min(epochs, max_epochs) if max_epochs is not None else epochs


def progress_enabled() -> bool:
    """Whether :func:`aecourse.fit` shows a progress bar (``AECOURSE_PROGRESS``)."""
    return _flag("AECOURSE_PROGRESS", default=True)


def checkpoint_cache_enabled() -> bool:
    """Whether ``fit(..., cache=...)`` may reuse trained weights (``AECOURSE_CHECKPOINTS``, on)."""
    return _flag("AECOURSE_CHECKPOINTS", default=True)


def device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``prefer``, else ``AECOURSE_DEVICE``, else CUDA, MPS, CPU."""
    choice = prefer if prefer is not None else os.environ.get("AECOURSE_DEVICE")
    if choice:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {str(dev)!r} was asked for but CUDA is not available here; "
                "unset AECOURSE_DEVICE or use 'cpu'."
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(
                "device 'mps' was asked for but Apple MPS is not available here; "
                "unset AECOURSE_DEVICE or use 'cpu'."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def data_dir() -> Path:
    """The directory for downloaded data and cached checkpoints (created if missing)."""
    root = os.environ.get("AECOURSE_DATA")
    if root:
        path = Path(root).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache).expanduser() / "aecourse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator with that seed.

    Two runs that call this with the same seed before the same computation give
    bit-identical results on the CPU.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
