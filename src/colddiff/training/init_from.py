"""Starting a run from another model's weights (``init_from``): e.g. a conditional model from
the shipped unconditional one, or a noisy ("hot") model from a cold one.

The weights the two networks share are copied; every weight the source lacks must start at
zero in the new network (the class embedding of a conditional ``cnn`` or ``unet`` does), so that
the new model starts as the source model: a conditional model fine-tuned from an unconditional
one predicts, at its first step and for every label, what the unconditional one did.

The degradation's ``noise`` option may differ too: it changes what the network sees, not what it
is, so a cold model can be fine-tuned into the same degradation with noise (the "hot" variant
of Bansal et al. 2022, section 5.2).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from colddiff.config import MODEL_FIELDS, TrainConfig, model_differences

__all__ = ["CONDITIONING_FIELDS", "NOISE_OPTION", "initialise"]

#: The model fields a source model may differ in: it is the same model, made conditional.
CONDITIONING_FIELDS = ("conditional", "classes")
#: The degradation option a source model may differ in: the same model, made noisy.
NOISE_OPTION = "noise"


def initialise(net: nn.Module, config: TrainConfig) -> list[str]:
    """Load the weights of ``config.init_from`` into ``net``; return the names of the weights
    the source lacks (they keep their zero start).

    Raises:
        ValueError: If the source is another model (other model fields than ``conditional``,
            ``classes`` and the degradation's ``noise``), has weights ``net`` lacks or of
            other shapes, or lacks a weight that does not start at zero in ``net``; the
            message names them.
        colddiff.checkpoints.CheckpointError: If the file is not a usable checkpoint.
    """
    from colddiff import pretrained  # imports the training package's callers: only when asked for

    source = config.init_from
    assert source is not None
    saved, weights = pretrained.model_weights(source)
    saved = _with_noise_of(saved, config)
    fields = tuple(name for name in MODEL_FIELDS if name not in CONDITIONING_FIELDS)
    differences = model_differences(saved, config, fields)
    if differences:
        raise ValueError(f"init_from {source!r} is another model than this config's: "
                         + "; ".join(differences))
    own = net.state_dict()
    foreign = sorted(set(weights) - set(own))
    reshaped = sorted(key for key in set(weights) & set(own) if weights[key].shape != own[key].shape)
    new = sorted(set(own) - set(weights))
    not_zero = [key for key in new if own[key].is_floating_point() and bool(own[key].any())]
    for problem, keys in (("has weights this network lacks", foreign),
                          ("has weights of other shapes", reshaped),
                          ("lacks weights that do not start at zero here", not_zero)):
        if keys:
            raise ValueError(f"init_from {source!r} {problem}: {_few(keys)}; it must be the same network, "
                             "save for weights that start at zero (a class embedding)")
    net.load_state_dict({**own, **weights})
    return new


def _with_noise_of(saved: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The source's config with the degradation's noise option taken from ``config``."""
    options = {key: value for key, value in (saved.get("degradation_kwargs") or {}).items()
               if key != NOISE_OPTION}
    if NOISE_OPTION in config.degradation_kwargs:
        options[NOISE_OPTION] = config.degradation_kwargs[NOISE_OPTION]
    return {**saved, "degradation_kwargs": options}


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

