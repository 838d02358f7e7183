"""Forward processes: the :class:`Degradation` interface, the built-ins and the registry.

Built-in names: ``gaussian`` (:class:`GaussianNoise`), ``fashion_mnist``
(:class:`FashionMNISTMixing`), ``mixing`` (:class:`DataMixing`, any image source), ``blur``
(:class:`Blur`), ``heat`` (:class:`Heat`, Inverse Heat Dissipation), ``blurring``
(:class:`Blurring`, Blurring Diffusion), ``superres`` (:class:`SuperResolution`) and ``inpaint``
(:class:`Inpaint`); each but ``gaussian`` and ``blurring`` takes a ``noise`` option
(:mod:`colddiff.degradations.noise`).
Third-party packages add their own
through the ``colddiff.degradations`` entry-point group; see :mod:`colddiff.degradations.registry`.
"""

from colddiff.degradations.base import (
    Degradation,
    PriorUnavailableError,
    check_image_shape,
    check_images,
    check_timesteps,
)
from colddiff.degradations.images import prior_device
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
from colddiff.degradations.mixing import (  # isort: skip
    DataMixing,
    FashionMNISTMixing,
    ImageMixing,
    MixingDegradation,
)
from colddiff.degradations.separable import SeparableBlur  # isort: skip
from colddiff.degradations.blur import Blur  # isort: skip
from colddiff.degradations.heat import Heat  # isort: skip
from colddiff.degradations.blurring import Blurring  # isort: skip
from colddiff.degradations.superres import SuperResolution  # isort: skip
from colddiff.degradations.inpaint import Inpaint  # isort: skip

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Blur",
    "Blurring",
    "DataMixing",
    "Degradation",
    "DegradationPluginError",
    "FashionMNISTMixing",
    "GaussianNoise",
    "Heat",
    "ImageMixing",
    "Inpaint",
    "MixingDegradation",
    "PriorUnavailableError",
    "SeparableBlur",
    "SuperResolution",
    "available",
    "check_image_shape",
    "check_images",
    "check_timesteps",
    "create",
    "get",
    "prior_device",
    "refresh",
    "register",
]
