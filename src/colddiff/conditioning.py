"""Conditioning: class labels (or another conditioning tensor), the null class, label dropout and
classifier-free guidance.

A network says whether it takes labels (the protocol, for the built-in networks and plugins
alike):

* ``conditioning = "class"`` and ``num_classes = K``: it is called as ``net(x_t, t, labels)``
  with ``labels`` a ``(B,)`` int64 tensor of class indices in ``[0, K]``; index ``K`` is the
  *null class*, "no label", which makes the model unconditional;
* ``conditioning = "embedding"`` and ``cond_dim = D``: it is called as ``net(x_t, t, cond)``
  with ``cond`` a ``(B, D)`` float tensor (an embedding of a text, an image...); the zero
  vector is the null condition;
* no ``conditioning`` attribute (or ``None``): it is called as ``net(x_t, t)``.

Training drops each label with probability ``cond_drop`` (replaced by the null class; Ho &
Salimans 2022, "Classifier-Free Diffusion Guidance", Algorithm 1, their ``p_uncond``), so that
one network learns both the conditional and the unconditional model. Sampling with guidance
``w`` then uses ``uncond + w (cond - uncond)`` as the network's prediction (their eq. 6, whose
``w`` is ours minus 1): ``w = 1`` is the plain conditional model, ``w = 0`` the unconditional
one, ``w > 1`` pushes the samples towards their class. Both predictions come from one network
call on a batch of ``2B`` unless the network sets ``guidance_batching = False`` (then two calls
of ``B``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DEFAULT_COND_DROP", "Conditioning", "add_class_embedding", "check_classes",
           "check_cond_drop", "check_guidance", "check_num_classes", "class_labels", "class_rows",
           "labels_for", "zero_class_embedding"]

#: The label dropout of a conditional model unless told otherwise (Ho & Salimans: 0.1 or 0.2).
DEFAULT_COND_DROP = 0.1


@dataclass(frozen=True)
class Conditioning:
    """What a network's conditioning is: ``kind`` ``"class"`` with ``size`` classes, or
    ``"embedding"`` of ``size`` values; ``batched``: guidance may call it once on ``2B``."""

    kind: Literal["class", "embedding"]
    size: int
    batched: bool = True

    @classmethod
    def of(cls, net: nn.Module) -> Conditioning | None:
        """The conditioning ``net`` declares (see the module's docstring), or ``None``; a
        :class:`~torch.nn.parallel.DistributedDataParallel` wrapper is looked through.

        Raises:
            ValueError: If the declaration is malformed (the message names the attribute).
        """
        module = net.module if isinstance(net, DistributedDataParallel) else net
        kind = getattr(module, "conditioning", None)
        if kind is None:
            return None
        if kind not in ("class", "embedding"):
            raise ValueError(f"net.conditioning must be None, 'class' or 'embedding', got {kind!r}")
        attribute = "num_classes" if kind == "class" else "cond_dim"
        size = getattr(module, attribute, None)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a net with conditioning = {kind!r} must have {attribute} set to a "
                             f"positive integer, got {size!r}")
        batched = getattr(module, "guidance_batching", True)
        if not isinstance(batched, bool):
            raise ValueError(f"net.guidance_batching must be True or False, got {batched!r}")
        return cls(kind, size, batched)

    def null(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The null condition for ``batch`` images: the null class ``K``, or zero vectors."""
        if self.kind == "class":
            return torch.full((batch,), self.size, dtype=torch.long, device=device)
        return torch.zeros((batch, self.size), dtype=dtype, device=device)

    def check(self, labels: object, batch: int) -> Tensor:
        """``labels`` checked to suit this conditioning for a batch of ``batch`` images.

        Class indices are checked to lie in ``[0, K]`` on the CPU only, so that the check never
        forces a host-device synchronisation (as the steps ``t`` are).

        Raises:
            ValueError: Naming ``labels``, what it must be and what it is.
        """
        if self.kind == "class":
            expected = f"({batch},) integer tensor of class indices in [0, {self.size - 1}] (or " \
                       f"{self.size}, the null class)"
            ok = isinstance(labels, Tensor) and not labels.is_floating_point() and not labels.is_complex() \
                and labels.dtype != torch.bool
        else:
            expected = f"({batch}, {self.size}) float tensor (the conditioning; zeros: none)"
            ok = isinstance(labels, Tensor) and labels.is_floating_point()
        if not ok:
            raise ValueError(f"labels must be a {expected}, got {_described(labels)}")
        assert isinstance(labels, Tensor)
        shape = (batch,) if self.kind == "class" else (batch, self.size)
        if tuple(labels.shape) != shape:
            raise ValueError(f"labels must have one entry per image: a {expected}, got shape "
                             f"{tuple(labels.shape)}")
        if self.kind == "class" and labels.device.type == "cpu" and labels.numel() and (
                int(labels.min()) < 0 or int(labels.max()) > self.size):
            raise ValueError(f"labels must be class indices in [0, {self.size - 1}] (or {self.size}, "
                             f"the null class), got values from {int(labels.min())} to {int(labels.max())}")
        if self.kind == "class":
            return labels.long()
        if labels.device.type == "cpu" and not bool(torch.isfinite(labels).all()):
            raise ValueError("labels (a conditioning tensor) holds NaN or infinite values")
        return labels


def _described(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_guidance(guidance: object) -> float:
    """``guidance`` as a float, checked to be a finite number ``>= 0``.

    Raises:
        ValueError: If it is not.
    """
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not (
            math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number >= 0 (1: the plain conditional model, 0: "
                         f"the unconditional one, above 1: stronger), got {guidance!r}")
    return float(guidance)


def check_cond_drop(cond_drop: object) -> float:
    """``cond_drop`` as a float, checked to lie in ``[0, 1)``.

    Raises:
        ValueError: If it does not.
    """
    if isinstance(cond_drop, bool) or not isinstance(cond_drop, (int, float)) or not 0 <= cond_drop < 1:
        raise ValueError(f"cond_drop must be a probability in [0, 1) (the share of labels dropped in "
                         f"training; {DEFAULT_COND_DROP} by default), got {cond_drop!r}")
    return float(cond_drop)


def check_num_classes(num_classes: object) -> int | None:
    """``num_classes`` checked to be ``None`` (unconditional) or an integer ``>= 2``.

    Raises:
        ValueError: If it is neither.
    """
    if num_classes is None or (type(num_classes) is int and num_classes >= 2):
        return num_classes
    raise ValueError(f"num_classes must be None (unconditional) or an integer >= 2, got {num_classes!r}")


def check_classes(classes: object, what: str = "classes") -> tuple[str, ...]:
    """A label set: at least two distinct, non-empty class names.

    Raises:
        ValueError: Naming ``what`` and what is wrong.
    """
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"{what} must be a list of class names (non-empty strings), got {classes!r}")
    if len(classes) < 2:
        raise ValueError(f"{what} must hold at least 2 classes to condition on, got {list(classes)}")
    if len(set(classes)) != len(classes):
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f"{what} must name each class once; repeated: {repeated}")
    return tuple(classes)


def zero_class_embedding(num_classes: int, dim: int) -> nn.Embedding:
    """A learned embedding of the ``num_classes`` classes and the null class (index
    ``num_classes``), of width ``dim``, starting at zero: a network that adds it to its time
    embedding starts as the same network without it (and draws nothing from the random
    generator, so its other weights are those of the unconditional network of the same seed)."""
    return nn.Embedding(num_classes + 1, dim, _weight=torch.zeros(num_classes + 1, dim))


def add_class_embedding(embedding: Tensor, table: nn.Embedding | None, labels: Tensor | None) -> Tensor:
    """``embedding`` ``(B, D)`` plus the class embedding of ``labels`` from ``table`` (the null
    class when ``labels`` is ``None``); unchanged for an unconditional network (``table`` is
    ``None``).

    Raises:
        ValueError: If labels are given to an unconditional network.
    """
    if table is None:
        if labels is not None:
            raise ValueError("labels given to an unconditional network (built without num_classes)")
        return embedding
    if labels is None:
        labels = torch.full((embedding.shape[0],), table.num_embeddings - 1, dtype=torch.long,
                            device=embedding.device)
    shifted: Tensor = embedding + table(labels)
    return shifted


def labels_for(requested: Sequence[int | str], classes: Sequence[str]) -> list[int]:
    """The indices of the ``requested`` classes in the label set ``classes``: each named by its
    name (``"Sneaker"``, or ``"7"`` among MNIST's ``"0"``...``"9"``), else by its index.

    Raises:
        ValueError: If one is in neither form (the message lists the label set).
    """
    indices = []
    for wanted in requested:
        text = str(wanted).strip()
        if text in classes:
            indices.append(list(classes).index(text))
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
            indices.append(int(text))
        else:
            listed = ", ".join(repr(c) for c in classes)
            raise ValueError(f"class {text!r} is not in the model's label set; accepted: a name among "
                             f"[{listed}] or an index in [0, {len(classes) - 1}]")
    return indices


def class_labels(n: int, num_classes: int, chosen: Sequence[int] | None = None) -> Tensor:
    """``n`` labels spread evenly over the ``chosen`` classes (default: all ``num_classes``),
    in order: class by class, the first ``n % len(chosen)`` classes one image more."""
    chosen = list(range(num_classes)) if chosen is None else list(chosen)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not chosen:
        raise ValueError("choose at least one class")
    share, extra = divmod(n, len(chosen))
    counts = [share + (i < extra) for i in range(len(chosen))]
    return torch.tensor([c for c, count in zip(chosen, counts, strict=True) for _ in range(count)],
                        dtype=torch.long)


def class_rows(samples: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """``samples`` laid out one row per class for an image grid: ``(images, nrow)`` with the
    classes in increasing order and blank (zero) images filling the shorter rows."""
    labels = labels.to(samples.device)
    present = torch.unique(labels).tolist()
    rows = [samples[labels == c] for c in present]
    width = max(len(row) for row in rows)
    blank = samples.new_zeros((width, *samples.shape[1:]))
    return torch.cat([torch.cat([row, blank[len(row):]]) for row in rows]), width
