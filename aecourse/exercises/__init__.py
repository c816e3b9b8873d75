"""The checks students call from exercise cells.

Each chapter has a module here (``aecourse.exercises.intro``, ...). A check
prints a short confirmation when the answer is right; when it is not, it raises
:class:`NotYet` with a message saying what differs -- shown in Jupyter as that
message alone, without a traceback.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class NotYet(AssertionError):
    """The answer to an exercise is not right yet; the message says what differs."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"Not yet: {self}"]


def passed(message: str) -> None:
    print(f"Correct: {message}")


def call_student(fn: Callable[..., Any], *args: Any, what: str = "your function") -> Any:
    """Call a student's function, turning the usual first mistakes into clear feedback."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotYet(f"{what} still raises NotImplementedError: replace that line with your code.") from None
    except Exception as exc:
        raise NotYet(f"{what} raised {type(exc).__name__}: {exc}") from None


def as_answer_tensor(got: Any, what: str) -> torch.Tensor:
    """A student's answer as a float CPU tensor, or :class:`NotYet` saying what it was instead."""
    if not isinstance(got, torch.Tensor):
        try:
            got = torch.as_tensor(got, dtype=torch.float32)
        except Exception:
            raise NotYet(f"{what} should return a tensor, got {type(got).__name__}") from None
    return got.detach().cpu().float()


def compare_tensors(got: Any, expected: torch.Tensor, name: str, *, rtol: float = 1e-4,
                    atol: float = 1e-5) -> None:
    """Raise :class:`NotYet` saying how ``got`` differs from ``expected``, or return quietly."""
    if not isinstance(got, torch.Tensor):
        try:
            got = torch.as_tensor(got, dtype=expected.dtype)
        except Exception:
            raise NotYet(f"{name} should be a tensor, got {type(got).__name__}") from None
    if got.shape != expected.shape:
        raise NotYet(f"{name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    got = got.detach().to(expected.dtype).cpu()
    expected = expected.detach().cpu()
    if not torch.isfinite(got).all():
        raise NotYet(f"{name} contains NaN or infinite values")
    if not torch.allclose(got, expected, rtol=rtol, atol=atol):
        diff = (got - expected).abs()
        i = int(diff.reshape(-1).argmax())
        raise NotYet(
            f"{name} differs from the expected values: largest difference {float(diff.max()):.4g} at flat "
            f"index {i} (got {float(got.reshape(-1)[i]):.6g}, expected {float(expected.reshape(-1)[i]):.6g})"
        )


__all__ = ["NotYet", "passed", "call_student", "as_answer_tensor", "compare_tensors"]
