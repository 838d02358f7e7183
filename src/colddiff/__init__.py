"""colddiff: denoising and cold diffusion with any degradation, in PyTorch.

The public API: :class:`Schedule`, :class:`Degradation` (and the :mod:`~colddiff.degradations`
registry), :class:`Denoiser`, the samplers :class:`DDPMSampler` and :class:`ColdSampler`, the
networks in :mod:`~colddiff.nets` and the datasets in :mod:`~colddiff.data`.
"""

from colddiff import data, degradations, nets
from colddiff.degradations import Degradation
from colddiff.denoisers import Denoiser
from colddiff.samplers import ColdSampler, DDPMSampler, Sampler
from colddiff.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "ColdSampler",
    "DDPMSampler",
    "Degradation",
    "Denoiser",
    "Sampler",
    "Schedule",
    "__version__",
    "data",
    "degradations",
    "nets",
]
