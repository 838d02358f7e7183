"""A small U-Net denoiser for 28x28 / 32x32 images (Ho et al. 2020's design, scaled down)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from colddiff.conditioning import add_class_embedding, check_num_classes, zero_class_embedding

__all__ = ["UNet"]


def sinusoidal_embedding(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """Transformer-style ``[sin, cos]`` embedding of ``t * scale`` (``t`` a fraction in [0, 1])."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / max(half - 1, 1))
    phases = (t.float() * scale)[:, None] * frequencies[None, :]
    return torch.cat([phases.sin(), phases.cos()], dim=1)


class ResidualBlock(nn.Module):
    """``GroupNorm -> SiLU -> Conv`` twice, the time embedding added in between, plus a skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(embedding)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        out: Tensor = h + self.skip(x)
        return out


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                                  v.transpose(-1, -2))
        out: Tensor = self.out(attended.transpose(-1, -2).reshape(b, c, h, w))
        return x + out


def default_multipliers(image_size: int | tuple[int, int] | None) -> tuple[int, ...]:
    """``(1, 2, 2)`` up to 32 pixels, and one more ``2`` per doubling above, so that the lowest
    resolution (where the attention is) stays at 4 to 8 pixels.

    Raises:
        ValueError: If ``image_size`` is not a positive int or a pair of them.
    """
    if image_size is None:
        return (1, 2, 2)
    sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    extra = max(0, math.ceil(math.log2(max(sizes) / 32)))
    return (1, 2, 2) + (2,) * extra


class UNet(nn.Module):
    """A U-Net with residual blocks, a time embedding in every block, and optional attention.

    One resolution per entry of ``multipliers`` (by default three up to 32 pixels, 28 -> 14 -> 7
    for MNIST, and one more per doubling above: 64 -> 32 -> 16 -> 8): at each, ``blocks`` residual blocks
    (GroupNorm, SiLU) on the way down and ``blocks`` on the way up, the latter fed the matching
    down-path activations (skip connections); strided convolutions halve and nearest-neighbour
    upsampling doubles the size; self-attention at the lowest resolution when ``attention``.
    The time fraction ``t`` gets a sinusoidal embedding and an MLP, added in every block. With
    ``num_classes``, a learned embedding of the class (starting at zero:
    :func:`~colddiff.conditioning.zero_class_embedding`) is added to the time embedding, and the
    network is called as ``net(x, t, labels)`` (:mod:`colddiff.conditioning`).
    Inputs whose height or width is not a multiple of ``2 ** (resolutions - 1)`` are zero-padded
    and the output cropped.

    Same call as :class:`~colddiff.nets.CNN`: ``net(x, t)`` with ``t = step / T`` of shape ``(B,)``.

    Args:
        in_channels: Image channels.
        channels: Base width ``C``.
        multipliers: Width multipliers, one per resolution (default: ``(1, 2, 2)``, plus a ``2``
            per doubling of ``image_size`` above 32).
        image_size: ``(H, W)`` (or one int) of the images; it chooses the default
            ``multipliers`` (colddiff passes the data's).
        blocks: Residual blocks per resolution and direction.
        attention: Self-attention at the lowest resolution.
        groups: GroupNorm groups.
        dropout: Dropout inside the residual blocks.
        num_classes: Condition on ``num_classes`` classes (index ``num_classes``: the null
            class), or ``None`` for an unconditional network.
    """

    def __init__(self, in_channels: int = 1, channels: int = 32,
                 multipliers: Sequence[int] | None = None, blocks: int = 2, attention: bool = True,
                 groups: int = 8, dropout: float = 0.0,
                 image_size: int | tuple[int, int] | None = None, num_classes: int | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("channels", channels), ("blocks", blocks),
                            ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if multipliers is None:
            multipliers = default_multipliers(image_size)
        if len(multipliers) < 1 or not all(isinstance(m, int) and m > 0 for m in multipliers):
            raise ValueError(
                f"multipliers must be positive ints, one per resolution, got {multipliers!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        widths = [channels * m for m in multipliers]
        self.multiple = 2 ** (len(widths) - 1)  # what the input is padded to
        time_dim = 4 * channels
        self.channels = channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = channels
        for level, width in enumerate(widths):
            self.down.append(nn.ModuleList(
                ResidualBlock(previous if i == 0 else width, width, time_dim, groups, dropout)
                for i in range(blocks)))
            previous = width
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.middle = nn.ModuleList([ResidualBlock(previous, previous, time_dim, groups, dropout),
                                     ResidualBlock(previous, previous, time_dim, groups, dropout)])
        self.attention = SelfAttention(previous, groups) if attention else None

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            self.up.append(nn.ModuleList(
                ResidualBlock((previous if i == 0 else width) + width, width, time_dim, groups, dropout)
                for i in range(blocks)))
            previous = width
            if level > 0:
                self.upsample.append(nn.Conv2d(width, widths[level - 1], 3, padding=1))
                previous = widths[level - 1]
        last = nn.Conv2d(channels, in_channels, 3, padding=1)
        nn.init.zeros_(last.weight)  # start as the zero function: a stable first step
        nn.init.zeros_(cast(Tensor, last.bias))
        self.head = nn.Sequential(nn.GroupNorm(min(groups, channels), channels), nn.SiLU(), last)
        self.num_classes = check_num_classes(num_classes)
        self.conditioning = "class" if num_classes is not None else None
        self.class_embedding = zero_class_embedding(num_classes, time_dim) if num_classes else None

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """Predict the target for ``x`` ``(B, C, H, W)`` at time fractions ``t`` ``(B,)`` (of the
        classes ``labels`` ``(B,)`` for a conditional network; ``None``: the null class)."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        embedding = add_class_embedding(self.time_mlp(sinusoidal_embedding(t, self.channels)),
                                        self.class_embedding, labels)
        h = self.stem(x)
        skips: list[Tensor] = []
        for level, level_blocks in enumerate(self.down):
            for block in cast(nn.ModuleList, level_blocks):
                h = block(h, embedding)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle[0](h, embedding)
        if self.attention is not None:
            h = self.attention(h)
        h = self.middle[1](h, embedding)
        for level, level_blocks in enumerate(self.up):
            for block in cast(nn.ModuleList, level_blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            if level < len(self.upsample):
                h = self.upsample[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out: Tensor = self.head(h)
        return out[..., :height, :width]
