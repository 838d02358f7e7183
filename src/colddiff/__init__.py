"""colddiff: denoising and cold diffusion with any degradation, in PyTorch.

The public API: :class:`Schedule`, :class:`Degradation` (and the :mod:`~colddiff.degradations`
registry), :class:`Denoiser`, the samplers (:mod:`~colddiff.samplers`: :class:`DDPMSampler`,
:class:`DDIMSampler`, :class:`ColdSampler`, :class:`DPMSolverSampler`), the networks in
:mod:`~colddiff.nets`, the datasets in :mod:`~colddiff.data`, the Fréchet MNIST Distance in
:mod:`~colddiff.fmd` and the shipped models in :mod:`~colddiff.pretrained`.

The names are imported on first use (PEP 562), so that ``import colddiff`` and the command
line's ``--help`` and ``--version`` do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it (a submodule when the name is the module itself).
_LAZY = {
    "ColdSampler": "colddiff.samplers",
    "DDIMSampler": "colddiff.samplers",
    "DDPMSampler": "colddiff.samplers",
    "DPMSolverSampler": "colddiff.samplers",
    "Degradation": "colddiff.degradations",
    "Denoiser": "colddiff.denoisers",
    "Sampler": "colddiff.samplers",
    "Schedule": "colddiff.schedules",
    "data": "colddiff.data",
    "degradations": "colddiff.degradations",
    "fmd": "colddiff.fmd",
    "nets": "colddiff.nets",
    "pretrained": "colddiff.pretrained",
    "samplers": "colddiff.samplers",
}

__all__ = [
    "ColdSampler",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverSampler",
    "Degradation",
    "Denoiser",
    "Sampler",
    "Schedule",
    "__version__",
    "data",
    "degradations",
    "fmd",
    "nets",
    "pretrained",
    "samplers",
]

if TYPE_CHECKING:
    from colddiff import data, degradations, fmd, nets, pretrained, samplers
    from colddiff.degradations import Degradation
    from colddiff.denoisers import Denoiser
    from colddiff.samplers import ColdSampler, DDIMSampler, DDPMSampler, DPMSolverSampler, Sampler
    from colddiff.schedules import Schedule


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'colddiff' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__ == f"colddiff.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
