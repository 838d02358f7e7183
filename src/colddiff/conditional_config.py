"""The conditioning fields of a :class:`~colddiff.config.TrainConfig` (``conditional``,
``classes``, ``cond_drop``, ``guidance``, ``embedding_lr``, ``init_from``): their checks, and the
network they ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from colddiff.conditioning import check_classes, check_cond_drop, check_guidance
from colddiff.degradations.base import check_positive

if TYPE_CHECKING:
    from colddiff.config import TrainConfig
    from colddiff.denoisers import Denoiser

__all__ = ["check_fields", "checked", "num_classes"]


def check_fields(config: TrainConfig) -> None:
    """Check the conditioning fields (called by :meth:`TrainConfig.validate`).

    Raises:
        ValueError: Naming the first bad field and what it accepts; ``classes``, ``cond_drop``,
            ``guidance`` and ``embedding_lr`` are only for ``conditional = true``.
    """
    if not isinstance(config.conditional, bool):
        raise ValueError(f"conditional must be true or false, got {config.conditional!r}")
    if config.init_from is not None and not (isinstance(config.init_from, str) and config.init_from):
        raise ValueError(f"init_from must be a shipped model's name or a checkpoint file, got "
                         f"{config.init_from!r}")
    for name in ("classes", "cond_drop", "guidance", "embedding_lr"):
        if getattr(config, name) is not None and not config.conditional:
            raise ValueError(f"{name} is for a conditional model; set conditional = true (or leave "
                             f"{name} out)")
    if config.classes is not None:
        config.classes = list(check_classes(config.classes))
    if config.cond_drop is not None:
        check_cond_drop(config.cond_drop)
    if config.guidance is not None:
        check_guidance(config.guidance)
    if config.embedding_lr is not None:
        check_positive("embedding_lr", config.embedding_lr)


def num_classes(config: TrainConfig) -> int | None:
    """The number of classes the network is built for (``None``: unconditional).

    Raises:
        ValueError: If the config is conditional and its label set is not known yet.
    """
    if not config.conditional:
        return None
    if config.classes is None:
        raise ValueError("conditional = true needs the label set, classes (a Trainer takes it from "
                         "the data: a named dataset's, a folder's subfolders, the labels given)")
    return len(config.classes)


def checked(config: TrainConfig, denoiser: Denoiser) -> Denoiser:
    """``denoiser``, checked to be conditional on the config's classes exactly when the config
    says ``conditional = true``.

    Raises:
        ValueError: If the network takes no class labels for a conditional config, or takes them
            for an unconditional one.
    """
    conditioning, name = denoiser.conditioning, config.net
    if config.conditional and (conditioning is None or conditioning.kind != "class"
                               or conditioning.size != num_classes(config)):
        raise ValueError(f"net {name!r} does not take class labels for the {num_classes(config)} classes: "
                         "conditional = true needs a net that declares conditioning = 'class' and "
                         "takes num_classes (cnn, unet; see the plugin guide)")
    if not config.conditional and conditioning is not None:
        raise ValueError(f"net {name!r} is built conditional (net_kwargs {config.net_kwargs}) but the "
                         "config is not: set conditional = true, and leave num_classes to the data")
    return denoiser
