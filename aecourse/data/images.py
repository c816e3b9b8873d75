"""Image data as in-memory tensors: MNIST, Fashion-MNIST, and an offline default.

Every loader returns an :class:`ImageData` whose images are float32 tensors of
shape ``(N, 1, 28, 28)`` with values in ``[0, 1]``. Batches are then slices of
one tensor, with no per-sample PIL pipeline.

MNIST and Fashion-MNIST come through torchvision and are cached in
:func:`aecourse.config.data_dir`. When they cannot be had (no internet, as in
some classrooms), ``load_images`` falls back to scikit-learn's bundled
handwritten digits (1,797 images of 8x8 pixels), scaled up and framed to the
same 28x28 shape, and says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from aecourse import config

#: Names accepted by :func:`load_images` (and by ``AECOURSE_DATASET``).
DATASETS = ("mnist", "fashion-mnist", "digits", "standin")

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


class DataUnavailableError(RuntimeError):
    """The data set asked for cannot be obtained here and no fallback was allowed."""


@dataclass
class ImageData:
    """A train/test split of images with labels, all in memory.

    Attributes:
        name: human-readable name of the data set actually in use.
        key: short identifier (``"mnist"``, ``"fashion-mnist"``, ``"digits"``, ``"standin"``).
        x_train, x_test: float32 images, shape ``(N, 1, 28, 28)``, values in ``[0, 1]``.
        y_train, y_test: int64 class labels, shape ``(N,)``.
        classes: the class names, indexed by label.
        note: one line saying which data set is in use and why.
    """

    name: str
    key: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    note: str = ""
    source_shape: tuple[int, int] = (28, 28)
    extra: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        """Number of pixels per image (784 for 28x28)."""
        return int(np.prod(self.image_shape))

    @property
    def is_standin(self) -> bool:
        """True for random tensors standing in for MNIST (timing only: no real structure)."""
        return self.key == "standin"

    def flat(self, split: str = "train") -> torch.Tensor:
        """The images of ``split`` (``"train"`` or ``"test"``) as rows of length :attr:`dim`."""
        x = self._split(split)[0]
        return x.reshape(len(x), -1)

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "ImageData":
        """A random subset (same for the same seed), e.g. for quick mode."""
        g = torch.Generator().manual_seed(seed)

        def take(x: torch.Tensor, y: torch.Tensor, n: int | None):
            if n is None or n >= len(x):
                return x, y
            if n <= 0:
                raise ValueError(f"subset sizes must be positive, got {n}")
            idx = torch.randperm(len(x), generator=g)[:n]
            return x[idx], y[idx]

        xtr, ytr = take(self.x_train, self.y_train, n_train)
        xte, yte = take(self.x_test, self.y_test, n_test)
        return ImageData(self.name, self.key, xtr, ytr, xte, yte, self.classes, self.note,
                         self.source_shape, dict(self.extra))

    def __repr__(self) -> str:
        return (f"ImageData({self.name}: {len(self.x_train):,} train / {len(self.x_test):,} test, "
                f"images {tuple(self.image_shape)})")


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _short_reason(exc: BaseException) -> str:
    """The innermost cause of a failed download, in one line."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:160]


def _torchvision(key: str, download: bool) -> ImageData:
    """MNIST or Fashion-MNIST through torchvision, as in-memory tensors."""
    try:
        from torchvision import datasets
    except Exception as exc:  # pragma: no cover - depends on the installation
        raise DataUnavailableError(f"torchvision could not be imported ({_short_reason(exc)})") from exc

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[key]
    root = config.data_dir()
    with _socket_timeout(20):
        splits = [cls(str(root), train=train, download=download) for train in (True, False)]
    tensors = []
    for ds in splits:
        x = ds.data.to(torch.float32).div_(255.0).unsqueeze(1).contiguous()
        tensors += [x, ds.targets.to(torch.int64).clone()]
    if key == "mnist":
        name, classes = "MNIST", tuple(str(i) for i in range(10))
    else:
        name, classes = "Fashion-MNIST", FASHION_CLASSES
    note = f"Dataset: {name} ({len(tensors[0]):,} train / {len(tensors[2]):,} test images, 28x28), via torchvision."
    return ImageData(name, key, *tensors, classes=classes, note=note)


def digits_to_28(images: np.ndarray) -> torch.Tensor:
    """scikit-learn's 8x8 digits (values 0..16) to MNIST-like 28x28 tensors in [0, 1].

    Each image is scaled to a 20x20 box (bilinear, antialiased) and centred in a
    28x28 frame, which is how MNIST frames its digits. Upsampling is linear, so
    the 784 pixels still span at most 64 dimensions: the data have rank <= 64.
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    x = F.pad(x, (4, 4, 4, 4))
    return x.clamp_(0.0, 1.0).contiguous()


def load_digits_data(test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's bundled handwritten digits as 28x28 tensors, split stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    idx = np.arange(len(bunch.target))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=bunch.target)
    x = digits_to_28(bunch.images)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    note = (f"Dataset: scikit-learn digits ({len(tr):,} train / {len(te):,} test images, "
            "8x8 scaled to 28x28), bundled offline.")
    return ImageData("scikit-learn digits", "digits", x[tr], y[tr], x[te], y[te],
                     classes=tuple(str(i) for i in range(10)), note=note, source_shape=(8, 8))


def standin_data(n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> ImageData:
    """Random tensors of MNIST's shape, for timing full-size runs where MNIST cannot be had.

    They have no structure: results on them mean nothing beyond time and memory.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train + n_test, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    note = (f"Dataset: random stand-in of MNIST's shape ({n_train:,} train / {n_test:,} test) "
            "for timing only; its results mean nothing.")
    return ImageData("random stand-in (MNIST-shaped)", "standin", x[:n_train], y[:n_train],
                     x[n_train:], y[n_train:], classes=tuple(str(i) for i in range(10)), note=note)


# --------------------------------------------------------------------------- the loader


def load_images(name: str | None = None, *, fallback: bool = True, download: bool = True,
                verbose: bool = True) -> ImageData:
    """Load an image data set as in-memory tensors.

    Args:
        name: ``"mnist"`` (default), ``"fashion-mnist"``, ``"digits"`` (offline,
            bundled with scikit-learn) or ``"standin"`` (random tensors of MNIST's
            shape, for timing). Default: ``AECOURSE_DATASET`` if set, else MNIST.
        fallback: if MNIST/Fashion-MNIST cannot be obtained, use the offline
            digits instead (and say why). With ``fallback=False`` that is an error.
        download: allow torchvision to download into :func:`aecourse.config.data_dir`.
        verbose: print the one line that says which data set is in use.

    Raises:
        DataUnavailableError: the data set cannot be had and ``fallback`` is False.
        ValueError: an unknown name.
    """
    key = (name or os.environ.get("AECOURSE_DATASET") or "mnist").strip().lower().replace("_", "-")
    if key in {"fashion", "fashionmnist"}:
        key = "fashion-mnist"
    if key not in DATASETS:
        raise ValueError(f"unknown data set {key!r}; choose one of {', '.join(DATASETS)}.")

    if key == "digits":
        data = load_digits_data()
    elif key == "standin":
        data = standin_data()
    else:
        try:
            data = _torchvision(key, download)
        except Exception as exc:
            label = "MNIST" if key == "mnist" else "Fashion-MNIST"
            why = _short_reason(exc)
            if not fallback:
                raise DataUnavailableError(
                    f"{label} is not in {config.data_dir()} and could not be downloaded ({why}). "
                    "To fix: connect to the internet and run again; or copy the data set's raw files "
                    f"into {config.data_dir()}/{'MNIST' if key == 'mnist' else 'FashionMNIST'}/raw; "
                    "or point AECOURSE_DATA at a folder that has them; or use the offline default "
                    "with load_images('digits') or fallback=True."
                ) from None
            data = load_digits_data()
            data.note = data.note.rstrip(".") + f" -- {label} could not be obtained ({why})."
    if verbose:
        print(data.note)
    return data
