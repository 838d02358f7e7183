"""A network plugin: the smallest useful denoiser, to show the network contract.

colddiff calls a network as ``net(x_t, t)``: ``x_t`` is a ``(B, C, H, W)`` batch on the
denoiser's scale, ``t`` the ``(B,)`` times as fractions ``t / T`` in ``[0, 1]``; it returns a
tensor shaped like ``x_t`` (the noise, the clean image or ``v``, as the denoiser's ``predict``
says). When the constructor takes ``in_channels`` (and ``image_size``), colddiff passes the
training images' unless ``net_kwargs`` sets them.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["TinyNet"]


class TinyNet(nn.Module):
    """Three 3x3 convolutions with the time added as a learned per-channel offset.

    Args:
        in_channels: Image channels (given by colddiff from the data).
        width: Channels of the hidden layers.

    Raises:
        ValueError: If ``in_channels`` or ``width`` is not a positive integer.
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.time = nn.Linear(1, width)
        self.mid = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, in_channels, 3, padding=1)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The prediction for ``x_t`` at time fractions ``t``."""
        time = self.time(t[:, None].to(x_t.dtype))[:, :, None, None]
        hidden = nn.functional.gelu(self.inp(x_t) + time)
        hidden = nn.functional.gelu(self.mid(hidden))
        out: Tensor = self.out(hidden)
        return out
