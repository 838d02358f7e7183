"""The training images of a run, and the batches each process reads from them in each epoch.

The images come from the config's ``dataset`` (a named dataset or a folder) or from Python
(``Trainer(images=...)``, recorded as ``dataset = "memory"``). They are held on the training
device in the config's value range, unless they come from a folder too large for
:data:`colddiff.data.IN_MEMORY_BYTES`: that one is read lazily, by ``DataLoader`` workers. The
order of an epoch is a function of the seed and the epoch alone (a
:class:`~torch.utils.data.distributed.DistributedSampler`, one share per process), so a
resumed run reads the very same batches.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from colddiff import data
from colddiff.config import TrainConfig, from_unit_range
from colddiff.training.distributed import Processes
from colddiff.training.interrupts import SIGNALS
from colddiff.training.labels import checked_labels

__all__ = ["PRIOR_IMAGES", "Batches", "training_set", "with_given_images", "with_image_shape"]

#: At most this many training images (evenly spaced) fit a learned prior of a lazily read folder.
PRIOR_IMAGES = 4096


def training_set(config: TrainConfig, images: Tensor | Dataset[Any] | None = None,
                 labels: Tensor | None = None) -> data.ImageDataset:
    """The config's training images (``images``, with ``labels`` for a tensor, for ``dataset =
    "memory"``), via :func:`data.load`.

    Raises:
        ValueError: If the config trained on images given from Python and none are given.
    """
    if images is None and config.dataset == "memory":
        raise ValueError("this run trained on images given from Python (dataset = 'memory'); pass them "
                         "again: Trainer(config, out, images=...)")
    return data.load(config.dataset if images is None else images, image_size=config.image_size,
                     channels=config.channels, limit=config.limit_train,
                     on_error=config.on_error, labels=labels)  # type: ignore[arg-type]


def with_given_images(config: TrainConfig, images: Tensor | Dataset[Any], labels: Tensor | None = None
                      ) -> tuple[TrainConfig, data.ImageDataset]:
    """``config`` for training on ``images`` (and ``labels``) given from Python, and those
    images read.

    The config says ``dataset = "memory"`` and records the images' channels and size, so that
    sampling and export rebuild the model from the config alone.
    """
    config = config.replace(dataset="memory")
    given = training_set(config, images, labels)
    channels, height, width = given.images.shape[1:]
    return config.replace(channels=channels if channels in (1, 3) else config.channels,
                          image_size=height if height == width else config.image_size), given


def with_image_shape(config: TrainConfig) -> TrainConfig:
    """``config`` with its images' ``channels`` and ``image_size`` written out (a named dataset's
    own, 3 channels for a folder), so that every run's ``config.toml`` records its image shape.

    A config whose shape is not known before the images are read (images from Python not yet
    recorded), or not square, keeps what it has.
    """
    shape = config.image_shape
    if shape is None:
        return config
    channels, height, width = shape
    return config.replace(channels=channels, image_size=height if height == width else config.image_size)


def _source(config: TrainConfig) -> data.ImageDataset | data.ImageFolder:
    """The config's training images, in memory unless they come from a folder too large for
    :data:`colddiff.data.IN_MEMORY_BYTES` (then verified and read lazily)."""
    if config.dataset in (*data.DATASETS, "memory"):
        return training_set(config)
    folder = data.ImageFolder(config.dataset, image_size=config.image_size, channels=config.channels or 3)  # type: ignore[arg-type]
    shape = folder.image_shape
    if shape is None or len(folder) * math.prod(shape) * 4 <= data.IN_MEMORY_BYTES:
        return training_set(config)
    folder.verify(config.on_error)  # type: ignore[arg-type]
    folder.files = folder.files[:config.limit_train]
    return folder


def _leave_interrupts_to_the_trainer(worker: int) -> None:
    """A ``DataLoader`` worker ignores Ctrl-C and ``SIGTERM``: the training process stops after
    its step (:mod:`.interrupts`), and a worker that died of the terminal's Ctrl-C would fail the
    batch it is waiting for instead. Workers end with their loader, or their parent."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)


class Batches:
    """A run's training images and the batches of each epoch, for this process.

    The images are read on first use (:attr:`images`), not when the object is made.

    Args:
        config: The run's configuration.
        device: The training device.
        processes: The training processes (each reads its share of every epoch).
        given: Images given from Python (:func:`with_given_images`), or ``None`` for the
            config's ``dataset``.
    """

    def __init__(self, config: TrainConfig, device: torch.device, processes: Processes,
                 given: data.ImageDataset | None = None) -> None:
        self.config, self.device, self.processes = config, device, processes
        self._given = given
        self._images: Tensor | data.ImageFolder | None = None
        self._labels: Tensor | None = None

    @property
    def images(self) -> Tensor | data.ImageFolder:
        """The training images: on the device in the config's value range, or a folder read
        lazily when they would not fit in :data:`colddiff.data.IN_MEMORY_BYTES`."""
        if self._images is None:
            source = self._given if self._given is not None else _source(self.config)
            if isinstance(source, data.ImageFolder):
                self._images, labels = source, source.labels()
            else:
                self._images = from_unit_range(source.images, self.config).to(self.device)
                labels = source.labels
            checked = checked_labels(self.config, labels)
            self._labels = checked.to(self.device) if checked is not None else None
        return self._images

    @property
    def labels(self) -> Tensor | None:
        """The training images' labels ``(N,)`` on the device, for a conditional config
        (``None`` otherwise)."""
        _ = self.images
        return self._labels

    def __len__(self) -> int:
        return len(self.images)

    def per_epoch(self) -> int:
        """The number of batches each process reads per epoch.

        Raises:
            ValueError: If there are fewer images than one batch for each process.
        """
        size, world = self.config.batch_size, self.processes.world_size
        batches = (len(self) // world) // size
        if batches < 1:
            raise ValueError(f"batch_size {size} x {world} process(es) exceeds the {len(self)} training "
                             "images; lower batch_size"
                             + (" or raise limit_train" if self.config.limit_train else ""))
        return batches

    def epoch(self, epoch: int, first: int = 0) -> Iterator[tuple[Tensor, Tensor | None]]:
        """This process's batches of ``epoch`` from batch ``first`` (0-based) on, in the config's
        value range and memory layout, on the device, each with its labels (``None`` for an
        unconditional config)."""
        # The sampler only needs the dataset's length: the order depends on seed and epoch alone.
        order: DistributedSampler[int] = DistributedSampler(
            range(len(self)),  # type: ignore[arg-type]
            num_replicas=self.processes.world_size, rank=self.processes.rank, shuffle=True,
            seed=self.config.seed, drop_last=True)
        order.set_epoch(epoch)
        indices = list(order)
        size, batches = self.config.batch_size, self.per_epoch()
        images, labels = self.images, self.labels
        index = torch.tensor(indices, device=self.device)
        chosen = [index[b * size:(b + 1) * size] for b in range(first, batches)]
        batch_labels = (labels[rows] if labels is not None else None for rows in chosen)
        if isinstance(images, data.ImageFolder):  # the same batches, decoded by workers
            read = DataLoader(images, batch_sampler=[indices[b * size:(b + 1) * size]
                                                     for b in range(first, batches)],
                              num_workers=self.config.data_workers, pin_memory=self.device.type == "cuda",
                              worker_init_fn=_leave_interrupts_to_the_trainer)
            decoded = (from_unit_range(x.to(self.device, non_blocking=True), self.config) for x in read)
            return zip(self._laid_out(decoded), batch_labels, strict=True)
        return zip(self._laid_out(images[rows] for rows in chosen), batch_labels, strict=True)

    def _laid_out(self, batches: Iterator[Tensor]) -> Iterator[Tensor]:
        """``batches`` in the config's memory layout (channels-last when asked for)."""
        if not self.config.channels_last:
            return batches
        return (x.contiguous(memory_format=torch.channels_last) for x in batches)

    def prior_images(self) -> Tensor:
        """Images to fit a learned prior on, on the device in the config's value range: all of
        them when in memory, else :data:`PRIOR_IMAGES` evenly spaced ones."""
        images = self.images
        if isinstance(images, Tensor):
            return images
        picks = torch.linspace(0, len(images) - 1, min(PRIOR_IMAGES, len(images))).round().long().tolist()
        return self._stacked(images, picks)

    def first(self, n: int) -> Tensor:
        """The first ``n`` training images, on the device in the config's value range."""
        images = self.images
        if isinstance(images, Tensor):
            return images[:n]
        return self._stacked(images, list(range(min(n, len(images)))))

    def _stacked(self, folder: data.ImageFolder, picks: list[int]) -> Tensor:
        return from_unit_range(torch.stack([folder[i] for i in picks]), self.config).to(self.device)
