"""Training images as in-memory tensors in ``[0, 1]``: MNIST, Fashion-MNIST, CIFAR-10, a folder
of images, or any tensor or dataset (:func:`load`).

Named datasets are read through :mod:`torchvision.datasets` from a root folder chosen, in order,
by the ``root`` argument, the ``COLDDIFF_DATA_DIR`` environment variable, or a per-user cache
folder (``$XDG_CACHE_HOME/colddiff/data``, by default ``~/.cache/colddiff/data``). Missing files
are downloaded when the machine is online; offline, :class:`DatasetNotFoundError` says where to
put them.

The images are scaled exactly as ``transforms.ToTensor()`` does (``uint8 / 255``); the reference
study dropped the ``Normalize`` step, and so do we unless ``centre=True`` (which maps ``[0, 1]``
to ``[-0.5, 0.5]`` as the coursework starter did).

The modules: :mod:`~colddiff.data.loading` (:func:`load`, any source),
:mod:`~colddiff.data.datasets` (the named datasets), :mod:`~colddiff.data.folder` (a folder of
images, and one image file), :mod:`~colddiff.data.images` (:class:`ImageDataset` and the transforms) and
:mod:`~colddiff.data.errors`.
"""

from colddiff.data.datasets import (
    CLASSES,
    DATASETS,
    ENV_VAR,
    check_idx_file,
    cifar10,
    data_root,
    fashion_mnist,
    mnist,
)
from colddiff.data.errors import DatasetCorruptError, DatasetNotFoundError
from colddiff.data.folder import IMAGE_SUFFIXES, IN_MEMORY_BYTES, ImageFolder, read_image
from colddiff.data.images import ImageDataset, resize
from colddiff.data.loading import load

__all__ = [
    "CLASSES",
    "DATASETS",
    "ENV_VAR",
    "IMAGE_SUFFIXES",
    "IN_MEMORY_BYTES",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "ImageDataset",
    "ImageFolder",
    "check_idx_file",
    "cifar10",
    "data_root",
    "fashion_mnist",
    "load",
    "mnist",
    "read_image",
    "resize",
]
