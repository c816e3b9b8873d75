"""``fit``: the one training loop every chapter uses.

The data live in memory as one tensor, and a batch is a slice of a shuffled
index, which is several times faster than a ``DataLoader`` that builds every
example from a PIL image. The loop

* minimises ``objective(model, x)["loss"]`` with Adam (or any optimiser),
* records every named term per epoch, on the training and validation data,
* stops with a clear error naming the epoch if the loss becomes NaN or infinite,
  after putting back the weights of the last finite epoch,
* stops cleanly on Ctrl-C (KeyboardInterrupt), keeping the model and its history,
* can cache its result on disk, keyed by everything that determines it, so that
  re-running a chapter reuses trained weights.
"""

from __future__ import annotations

import copy
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from aecourse import config
from aecourse.objectives import Objective

CHECKPOINT_FORMAT = 1


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite. ``.history`` holds what was recorded before."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


class CheckpointError(RuntimeError):
    """A checkpoint file could not be loaded safely."""


@dataclass
class History:
    """Per-epoch averages of every term an objective returns.

    ``history.train["loss"][e]`` is the mean training loss in epoch ``e``;
    ``history.val`` has the same keys when validation data were given.
    """

    train: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    from_cache: bool = False

    def last(self, term: str = "loss", split: str = "train") -> float:
        """The value of ``term`` in the last completed epoch."""
        record = {"train": self.train, "val": self.val}[split]
        if term not in record or not record[term]:
            raise KeyError(f"no {split} values for {term!r}; recorded terms: {sorted(record)}")
        return record[term][-1]

    def to_dict(self) -> dict:
        return {"train": self.train, "val": self.val, "epochs": self.epochs,
                "seconds": self.seconds, "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(train={k: list(v) for k, v in d["train"].items()},
                   val={k: list(v) for k, v in d["val"].items()},
                   epochs=int(d["epochs"]), seconds=float(d["seconds"]),
                   interrupted=bool(d["interrupted"]))

    def __repr__(self) -> str:
        terms = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.train.items() if v)
        state = " (interrupted)" if self.interrupted else ""
        return f"History({self.epochs} epochs{state}: {terms})"


# --------------------------------------------------------------------------- checkpoints


def _tensor_digest(h: "hashlib._Hash", t: torch.Tensor) -> None:
    t = t.detach().to("cpu").contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    arr = t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy()
    h.update(memoryview(arr).cast("B"))  # hashes the buffer in place, no copy of the data


def _package_digest() -> str:
    """A digest of aecourse's own source: any change to the package invalidates cached runs."""
    global _PACKAGE_DIGEST
    if _PACKAGE_DIGEST is None:
        h = hashlib.blake2b(digest_size=8)
        root = Path(__file__).resolve().parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _PACKAGE_DIGEST = h.hexdigest()
    return _PACKAGE_DIGEST


_PACKAGE_DIGEST: str | None = None


def cache_key(model: nn.Module, objective: object, tensors: list[torch.Tensor | None], settings: dict) -> str:
    """A digest of everything that determines a training run's result.

    It covers the model's architecture and *initial* weights (so the seed
    counts), the objective's repr (its settings), every byte of the data, and
    the loop's settings (epochs, batch size, optimiser, learning rate, seed...),
    and the source of the aecourse package itself.
    """
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(model).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        _tensor_digest(h, t)
    obj = objective if not callable(objective) or hasattr(objective, "__dataclass_fields__") else None
    h.update((repr(obj) if obj is not None else
              f"{getattr(objective, '__module__', '')}.{getattr(objective, '__qualname__', repr(objective))}").encode())
    for t in tensors:
        if t is not None:
            _tensor_digest(h, t)
    h.update(repr(sorted(settings.items())).encode())
    h.update(f"format={CHECKPOINT_FORMAT};package={_package_digest()};torch={torch.__version__}".encode())
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, history: History | None = None) -> Path:
    """Save weights and history as plain tensors and numbers (no pickled objects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "history": history.to_dict() if history is not None else None}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a half-written file never has the final name
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> tuple[dict, History | None]:
    """Load a checkpoint safely (``weights_only=True``: arbitrary objects are refused).

    If ``model`` is given its weights are replaced. Returns ``(state_dict, history)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"refused to load {path}: it is not a plain-tensor checkpoint "
            f"({type(exc).__name__}). Only files written by aecourse.save_checkpoint "
            "(or any weights-only torch.save) can be loaded; delete the file to retrain."
        ) from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not an aecourse checkpoint (no 'state_dict'); delete it to retrain.")
    if model is not None:
        model.load_state_dict(payload["state_dict"])
    hist = payload.get("history")
    return payload["state_dict"], (History.from_dict(hist) if hist else None)


# --------------------------------------------------------------------------- the loop


def _batches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool):
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _check_inputs(model, objective, x_train, x_val, epochs, batch_size, lr):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(objective):
        raise TypeError("objective must be callable as objective(model, x) -> dict of loss terms")
    for name, t in (("x_train", x_train), ("x_val", x_val)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor (the data in memory), got {type(t).__name__}; "
                            "convert with torch.as_tensor(...)")
        if len(t) == 0:
            raise ValueError(f"{name} is empty")
        if not torch.is_floating_point(t):
            raise TypeError(f"{name} has dtype {t.dtype}; autoencoders need float data, e.g. x.float() / 255")
    if x_val is not None and x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"x_val examples have shape {tuple(x_val.shape[1:])} but x_train's have "
                         f"{tuple(x_train.shape[1:])}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")


def _evaluate(model, objective, x, batch_size, dev) -> dict[str, float]:
    sums: dict[str, float] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(dev, non_blocking=True)
            for k, v in objective(model, xb).items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(xb)
    model.train(was_training)
    return {k: s / len(x) for k, s in sums.items()}


def fit(
    model: nn.Module,
    objective: Objective,
    x_train: torch.Tensor,
    x_val: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache: str | None = None,
    progress: bool | None = None,
    callback: Callable[[int, History], None] | None = None,
) -> History:
    """Train ``model`` in place to minimise ``objective(model, x)["loss"]``.

    Args:
        model: any ``nn.Module``; it is moved to ``device`` and trained in place.
        objective: ``objective(model, x) -> dict`` with a scalar ``"loss"`` and any
            other named terms to record (see :mod:`aecourse.objectives`).
        x_train, x_val: the data as tensors in memory (a batch is a slice).
        epochs, batch_size, lr, weight_decay: the usual; Adam by default.
        optimizer: a factory ``optimizer(params, lr=..., weight_decay=...)``
            (default ``torch.optim.Adam``).
        seed: seeds the shuffling and any randomness inside the objective.
        device: default :func:`aecourse.config.device`.
        cache: a name; if given, the trained weights and history are saved under
            ``data_dir()/checkpoints`` keyed by everything that determines them,
            and a later identical call loads them instead of training
            (``AECOURSE_CHECKPOINTS=0`` turns this off; the tests do).
        progress: show a progress bar (default: ``AECOURSE_PROGRESS``, on).
        callback: called as ``callback(epoch, history)`` after every epoch.

    The model is trained on ``device`` and handed back on the device it came on
    (the CPU for a new model), so the chapter's own tensors work with it after
    training on a GPU.

    Returns:
        The :class:`History`. On Ctrl-C the loop stops, the model keeps the weights
        it had, and the history (``interrupted=True``) is returned.

    Raises:
        TrainingDivergedError: the loss became NaN/inf; the model is restored to
            the last epoch that ended finite.
    """
    _check_inputs(model, objective, x_train, x_val, epochs, batch_size, lr)
    dev = config.device(device)
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")  # where the model goes back to
    make_opt = optimizer or torch.optim.Adam

    path = None
    if cache and config.checkpoint_cache_enabled():
        settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                    "optimizer": getattr(make_opt, "__qualname__", repr(make_opt)), "seed": seed}
        key = cache_key(model, objective, [x_train, x_val], settings)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in cache)
        path = config.data_dir() / "checkpoints" / f"{safe}-{key}.pt"
        if path.exists():
            try:
                _, hist = load_checkpoint(path, model)
            except CheckpointError as exc:
                print(f"{exc} Retraining.", file=sys.stderr)
            else:
                model.to(home)
                hist = hist or History()
                hist.from_cache = True
                return hist

    model.to(dev)
    opt = make_opt(model.parameters(), lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    history = History()
    show = config.progress_enabled() if progress is None else progress
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc=f"fit {type(model).__name__}", unit="epoch", leave=False)
    n = len(x_train)
    start_time = time.perf_counter()
    good_state = copy.deepcopy(model.state_dict())
    model.train()
    try:
        for epoch in range(1, epochs + 1):
            sums: dict[str, torch.Tensor] = {}  # kept on the device: no sync per batch
            for b, idx in enumerate(_batches(n, batch_size, g, shuffle=True), start=1):
                xb = x_train[idx].to(dev, non_blocking=True)
                terms = objective(model, xb)
                if "loss" not in terms:
                    raise KeyError(f"the objective returned {sorted(terms)}, with no 'loss' to minimise")
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    model.load_state_dict(good_state)
                    raise TrainingDivergedError(
                        f"the loss became {float(loss.detach())} in epoch {epoch} (batch {b}) at lr={lr:g}. "
                        f"Try a lower learning rate (e.g. lr={lr / 10:g}) or check the data for NaN/inf. "
                        f"The model was put back to its weights after epoch {epoch - 1}; "
                        "the history so far is in the exception's .history.",
                        history,
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for k, v in terms.items():
                        sums[k] = sums[k] + v.detach() * len(idx) if k in sums else v.detach() * len(idx)
            for k, total in sums.items():
                history.train.setdefault(k, []).append(float(total) / n)
            if x_val is not None:
                for k, v in _evaluate(model, objective, x_val, max(batch_size, 512), dev).items():
                    history.val.setdefault(k, []).append(v)
            history.epochs = epoch
            history.seconds = time.perf_counter() - start_time
            good_state = copy.deepcopy(model.state_dict())
            if bar is not None:
                post = {"loss": f"{history.train['loss'][-1]:.4g}"}
                if x_val is not None:
                    post["val"] = f"{history.val['loss'][-1]:.4g}"
                bar.set_postfix(post)
                bar.update(1)
            if callback is not None:
                callback(epoch, history)
    except KeyboardInterrupt:
        history.interrupted = True
        history.seconds = time.perf_counter() - start_time
        print(f"Training interrupted after {history.epochs} complete epoch(s); the model keeps its "
              "current weights and the history is returned.", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
        model.to(home)

    if path is not None and not history.interrupted:
        save_checkpoint(path, model, history)
    return history


def per_example(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024,
                device: str | torch.device | None = None) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in batches without gradients; concatenate the results on the CPU."""
    dev = config.device(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(fn(x[start:start + batch_size].to(dev)).cpu())
    return torch.cat(out)

