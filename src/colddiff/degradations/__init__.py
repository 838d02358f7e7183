"""Forward processes: the :class:`Degradation` interface, the built-ins and the registry.

Built-in names: ``gaussian`` (:class:`GaussianNoise`), ``fashion_mnist``
(:class:`FashionMNISTMixing`), ``mixing`` (:class:`DataMixing`, any image source), ``blur``
(:class:`Blur`, also noisy), ``superres`` (:class:`SuperResolution`) and ``inpaint``
(:class:`Inpaint`). Third-party packages add their own
through the ``colddiff.degradations`` entry-point group; see :mod:`colddiff.degradations.registry`.
"""

from colddiff.degradations.base import (
    Degradation,
    MixingDegradation,
    PriorUnavailableError,
    check_image_shape,
    check_images,
    check_timesteps,
)
from colddiff.degradations.registry import (
    ENTRY_POINT_GROUP,
    REGISTRY,
    DegradationPluginError,
    available,
    create,
    get,
    refresh,
    register,
)

# Importing the built-ins registers them.
from colddiff.degradations.gaussian import GaussianNoise  # isort: skip
from colddiff.degradations.mixing import DataMixing, FashionMNISTMixing, ImageMixing  # isort: skip
from colddiff.degradations.blur import Blur  # isort: skip
from colddiff.degradations.superres import SuperResolution  # isort: skip
from colddiff.degradations.inpaint import Inpaint  # isort: skip

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Blur",
    "DataMixing",
    "Degradation",
    "DegradationPluginError",
    "FashionMNISTMixing",
    "GaussianNoise",
    "ImageMixing",
    "Inpaint",
    "MixingDegradation",
    "PriorUnavailableError",
    "SuperResolution",
    "available",
    "check_image_shape",
    "check_images",
    "check_timesteps",
    "create",
    "get",
    "refresh",
    "register",
]
