"""The exponential moving average of a network's weights, updated without a device sync."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["EMA"]


class EMA:
    """A moving average of ``net``'s weights that starts at optimiser step ``start``.

    Each :meth:`update` from step ``start`` on moves the average towards the current weights,
    ``average += (1 - decay) (current - average)``, over the floating-point parameters and
    buffers, exactly as :func:`torch.optim.swa_utils.get_ema_multi_avg_fn` does; integer
    buffers (such as BatchNorm's counter) are copied. At step ``start``, and at the first update
    of an average that has not started yet (a run resumed past ``start``), the average becomes a
    copy of the current weights.

    Written out because :meth:`AveragedModel.update_parameters` reads its counter back to the
    host (a device sync per step); here whether the average has started is known on the host.
    The state (:meth:`state_dict`) is the :class:`~torch.optim.swa_utils.AveragedModel`'s: its
    keys are ``"module.<name>"`` and ``"n_averaged"``.

    Args:
        net: The network being trained.
        decay: The decay, in ``(0, 1)``.
        start: The optimiser step (counted from 1) of the first update.
    """

    def __init__(self, net: nn.Module, decay: float, start: int = 0) -> None:
        self.net = net
        self.decay = decay
        self.start = start
        multi_avg_fn = get_ema_multi_avg_fn(decay)  # type: ignore[no-untyped-call]
        self.average = AveragedModel(net, multi_avg_fn=multi_avg_fn, use_buffers=True)
        self.started = False  # the average holds weights (kept on the host: no device read)

    @property
    def module(self) -> nn.Module:
        """The averaged copy of the network."""
        return self.average.module

    def active(self, step: int) -> bool:
        """Whether the average is the model to sample from after ``step`` optimiser steps."""
        return step >= self.start

    def update(self, step: int) -> None:
        """Average in the current weights after optimiser step ``step`` (counted from 1);
        nothing before ``start``."""
        if step < self.start:
            return
        average = [*self.average.module.parameters(), *self.average.module.buffers()]
        current = [*self.net.parameters(), *self.net.buffers()]
        with torch.no_grad():
            if step == self.start or not self.started:  # (re)start here
                torch._foreach_copy_(average, current)
                self.average.n_averaged.fill_(1)
                self.started = True
                return
            floating = [(a, c) for a, c in zip(average, current, strict=True) if a.is_floating_point()]
            torch._foreach_lerp_([a for a, _ in floating], [c for _, c in floating], 1.0 - self.decay)
            for a, c in zip(average, current, strict=True):
                if not a.is_floating_point():
                    a.copy_(c)
            self.average.n_averaged += 1

    def state_dict(self) -> dict[str, Any]:
        """The average's state, as :meth:`AveragedModel.state_dict` gives it."""
        return self.average.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict`."""
        self.average.load_state_dict(state)
        self.started = int(self.average.n_averaged) > 0
