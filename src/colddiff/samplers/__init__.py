"""Samplers: from a degraded start ``x_T`` back to a clean image, one family per module.

:class:`Sampler` (:mod:`colddiff.samplers.base`) holds the loop they share, their step grid and
their checks. Samplers by name (:func:`create`, ``TrainConfig.sampler``, ``--sampler``), with
their options:

* ``ddpm`` (:class:`DDPMSampler`): ancestral; ``variance="beta" | "posterior"``.
* ``ddim`` (:class:`DDIMSampler`): Song et al.'s sampler; ``eta`` in ``[0, 1]`` (0:
  deterministic, 1: ancestral with the posterior variance).
* ``cold`` (:class:`ColdSampler`): Bansal et al.'s Algorithms 1 and 2 for any degradation;
  ``algorithm``, ``source``.
* ``dpmsolver++`` (:class:`DPMSolverSampler`): DPM-Solver++ (2M, 3M), ``order`` 1, 2 or 3; with
  ``sde=True`` SDE-DPM-Solver++ (1, 2M) and its noise share ``eta``.
* ``unipc`` (:class:`UniPCSampler`): UniPC (bh2), ``order`` 1, 2 or 3.
* ``soft`` (:class:`SoftSampler`): Soft Diffusion's Momentum Sampler for any linear corruption
  with noise.

Every sampler also takes ``spacing`` (its step grid, :mod:`colddiff.samplers.grids`), ``rho``
(for ``spacing="karras"``), ``final_denoise``, ``clip_x0`` and ``data_range``; its ``sample``
takes ``labels`` and ``guidance`` for a conditional denoiser (classifier-free guidance, in the
base class's loop: :mod:`colddiff.conditioning`).

Third-party packages add samplers through the ``colddiff.samplers`` entry-point group: a
:class:`Sampler` subclass whose constructor takes the denoiser and keyword options.
"""

from __future__ import annotations

from typing import Any

from colddiff.denoisers import Denoiser
from colddiff.registry import PluginError, Registry
from colddiff.samplers.base import Callback, Sampler
from colddiff.samplers.cold import ColdSampler
from colddiff.samplers.ddim import DDIMSampler
from colddiff.samplers.ddpm import DDPMSampler
from colddiff.samplers.dpmsolver import DPMSolverSampler
from colddiff.samplers.grids import SPACINGS, Spacing, StepGrid
from colddiff.samplers.soft import SoftSampler
from colddiff.samplers.unipc import UniPCSampler

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "SPACINGS", "Callback", "ColdSampler", "DDIMSampler",
           "DDPMSampler", "DPMSolverSampler", "Sampler", "SoftSampler", "Spacing", "StepGrid", "UniPCSampler",
           "available", "create", "get", "refresh", "register"]

#: The entry-point group third-party packages register samplers under.
ENTRY_POINT_GROUP = "colddiff.samplers"

#: The sampler registry.
REGISTRY: Registry[Sampler] = Registry("sampler", ENTRY_POINT_GROUP, Sampler, PluginError)
REGISTRY.register("ddpm")(DDPMSampler)
REGISTRY.register("ddim")(DDIMSampler)
REGISTRY.register("cold")(ColdSampler)
REGISTRY.register("dpmsolver++")(DPMSolverSampler)
REGISTRY.register("unipc")(UniPCSampler)
REGISTRY.register("soft")(SoftSampler)

register = REGISTRY.register
refresh = REGISTRY.refresh
available = REGISTRY.available
get = REGISTRY.get


def create(name: str, denoiser: Denoiser, **options: Any) -> Sampler:
    """The sampler called ``name`` for ``denoiser``, with its ``options``.

    Example:
        >>> from colddiff import Denoiser, degradations, nets, samplers
        >>> denoiser = Denoiser(nets.CNN(), degradations.create("gaussian"))
        >>> sampler = samplers.create("ddim", denoiser, eta=0.0)

    Raises:
        ValueError: If ``name`` is unknown (the message lists the available ones), an option is
            not one the sampler takes (the message lists those it takes), or a value is invalid.
        colddiff.registry.PluginError: If its plugin cannot be used.
    """
    return REGISTRY.create(name, denoiser, **options)
