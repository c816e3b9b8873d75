"""Optimiser factories for :func:`aecourse.fit` (its ``optimizer=`` argument)."""

from __future__ import annotations

from typing import Callable, Iterable

import torch


def adam_decay(steps: int, final_fraction: float = 0.01) -> Callable[..., torch.optim.Optimizer]:
    """Adam whose learning rate decays exponentially to ``final_fraction`` of its start over ``steps`` steps.

    A constant learning rate leaves mini-batch training hovering above the minimum
    (by an amount that grows with the rate); decaying it lets the iterates settle.
    Pass the result to ``fit(..., optimizer=adam_decay(steps))``; after ``steps`` steps
    the rate stays at its final value. The factory's name records its settings, so
    the checkpoint cache tells different schedules apart.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not 0 < final_fraction <= 1:
        raise ValueError(f"final_fraction must be in (0, 1], got {final_fraction!r}")
    gamma = final_fraction ** (1.0 / steps)

    def make(params: Iterable[torch.nn.Parameter], lr: float = 1e-3, weight_decay: float = 0.0):
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        floor = lr * final_fraction

        def decay(optimizer, args, kwargs):
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] * gamma, floor)

        opt.register_step_post_hook(decay)
        return opt

    make.__qualname__ = f"adam_decay(steps={steps}, final_fraction={final_fraction})"
    return make
