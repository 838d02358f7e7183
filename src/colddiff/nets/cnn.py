"""The reference study's convolutional denoiser (the coursework starter's ``CNN``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from colddiff.conditioning import add_class_embedding, check_num_classes, zero_class_embedding

__all__ = ["CNN"]


class CNN(nn.Module):
    """A stack of ``Conv2d -> LayerNorm -> GELU`` blocks with an additive time embedding.

    Exactly the reference study's network: each block is a ``Conv2d`` with kernel 7 and padding 3
    (the image size is kept), ``LayerNorm`` over ``(C, H, W)`` and ``GELU``; a final ``Conv2d``
    with kernel 3 maps back to the image channels. The time ``t`` (a fraction in ``[0, 1]``) is
    encoded with 16 frequencies ``{0} + {2 pi 1.5^i : i = 0..14}`` as ``[sin(t f), cos(t f) - 1]``
    and passed through an MLP ``32 -> 128 -> 128 -> 128 -> channels[0]`` (GELU between layers);
    its output is added to the output of the first block. With ``num_classes``, a learned
    embedding of the class (:func:`~colddiff.conditioning.zero_class_embedding`, starting at
    zero) is added to the time embedding: the network is then called as ``net(x, t, labels)``
    (:mod:`colddiff.conditioning`).

    Args:
        in_channels: Image channels (1 for MNIST).
        image_size: ``(H, W)``; ``LayerNorm`` has learned weights of shape ``(C, H, W)``, so the
            network is built for one image size.
        channels: Output channels of the blocks. The reference study used
            ``(16, 32, 64, 32, 16)``; the coursework starter ``(16, 32, 32, 16)``.
        kernel_size: Kernel of the blocks' convolutions.
        last_kernel_size: Kernel of the final convolution.
        time_frequencies: Number of encoding frequencies (16).
        time_hidden: Width of the time MLP (128).
        num_classes: Condition on ``num_classes`` classes (index ``num_classes``: the null
            class), or ``None`` for an unconditional network.
    """

    frequencies: Tensor

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
                 channels: Sequence[int] = (16, 32, 64, 32, 16), kernel_size: int = 7,
                 last_kernel_size: int = 3, time_frequencies: int = 16,
                 time_hidden: int = 128, num_classes: int | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("kernel_size", kernel_size),
                            ("last_kernel_size", last_kernel_size),
                            ("time_frequencies", time_frequencies), ("time_hidden", time_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if kernel_size % 2 == 0 or last_kernel_size % 2 == 0:
            raise ValueError("kernel_size and last_kernel_size must be odd to keep the image size")
        if not channels or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels!r}")
        if len(image_size) != 2 or not all(isinstance(s, int) and s > 0 for s in image_size):
            raise ValueError(f"image_size must be two positive ints (H, W), got {image_size!r}")

        self.blocks = nn.ModuleList()
        previous = in_channels
        for width in channels:
            self.blocks.append(nn.Sequential(
                nn.Conv2d(previous, width, kernel_size, padding=kernel_size // 2),
                nn.LayerNorm((width, *image_size)),
                nn.GELU(),
            ))
            previous = width
        self.out = nn.Conv2d(previous, in_channels, last_kernel_size, padding=last_kernel_size // 2)

        frequencies = [0.0] + [2 * math.pi * 1.5**i for i in range(time_frequencies - 1)]
        self.register_buffer("frequencies", torch.tensor(frequencies), persistent=False)
        self.time_mlp = nn.Sequential(
            nn.Linear(2 * time_frequencies, time_hidden), nn.GELU(),
            nn.Linear(time_hidden, time_hidden), nn.GELU(),
            nn.Linear(time_hidden, time_hidden), nn.GELU(),
            nn.Linear(time_hidden, channels[0]),
        )
        self.num_classes = check_num_classes(num_classes)
        self.conditioning = "class" if num_classes is not None else None
        self.class_embedding = zero_class_embedding(num_classes, channels[0]) if num_classes else None

    def time_embedding(self, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The ``(B, channels[0], 1, 1)`` embedding of the time fractions ``t`` ``(B,)`` (plus
        that of the classes ``labels`` for a conditional network; ``None``: the null class)."""
        phases = t.to(self.frequencies.dtype)[:, None] * self.frequencies[None, :]
        encoding = torch.cat([torch.sin(phases), torch.cos(phases) - 1], dim=1)
        embedding = add_class_embedding(self.time_mlp(encoding), self.class_embedding, labels)
        return embedding[:, :, None, None]

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """Predict the target (noise or clean image) for ``x`` ``(B, C, H, W)`` at times ``t``
        ``(B,)`` (of the classes ``labels`` ``(B,)`` for a conditional network)."""
        h = self.blocks[0](x) + self.time_embedding(t, labels)
        for block in self.blocks[1:]:
            h = block(h)
        out: Tensor = self.out(h)
        return out
