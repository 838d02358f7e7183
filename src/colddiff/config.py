"""Training configurations: one dataclass, the reference study's presets, and TOML files.

A :class:`TrainConfig` says everything a run needs: the data, the degradation and its schedule,
the network, what it predicts, the optimiser, how to sample during training. Every run saves its
resolved config as ``config.toml``; ``colddiff train --config FILE`` starts from one, and any
command-line option overrides it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from colddiff import checkpoints, conditional_config, data, degradations, nets, presets, samplers
from colddiff.degradations import Degradation
from colddiff.degradations.base import check_positive
from colddiff.denoisers import Denoiser
from colddiff.runtime import COMPILE_MODES, PRECISIONS
from colddiff.samplers import Sampler
from colddiff.schedules import Schedule
from colddiff.toml_text import to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "MODEL_FIELDS",
    "TrainConfig",
    "build_degradation",
    "build_denoiser",
    "build_sampler",
    "check_buildable",
    "from_unit_range",
    "model_differences",
    "to_unit_range",
]

_REPORT_CHANNELS = [16, 32, 64, 32, 16]


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the reference study's.

    Attributes:
        dataset: The training images: a name (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``;
            the training split), a folder of PNG and JPEG images, or ``"memory"`` for images
            given from Python (``Trainer(config, out, data=...)``). See :func:`colddiff.data.load`.
        image_size: Resize and centre-crop the images to ``image_size x image_size`` (``None``:
            a named dataset's own size; required for a folder).
        channels: 1 or 3: convert the images (``None``: a named dataset's own, 3 for a folder).
        on_error: For a folder: ``"raise"`` stops at an image that cannot be decoded, ``"skip"``
            leaves it out with a warning.
        value_range: ``[low, high]`` the model sees pixels in: ``[0, 1]`` (the reference study's,
            as ``ToTensor`` gives) or ``[-1, 1]`` (most diffusion code's). Samples are returned
            and saved in ``[0, 1]`` either way.
        data_workers: ``DataLoader`` worker processes that decode a folder too large to hold in
            memory (:data:`colddiff.data.IN_MEMORY_BYTES`); 0 decodes in the training process.
        limit_train: Use only the first ``limit_train`` training images.
        degradation: A registered degradation name (``colddiff degradations`` lists them).
        degradation_kwargs: Extra arguments for the degradation (the schedule is passed apart).
        schedule: A schedule spec, as :meth:`colddiff.Schedule.spec` returns.
        net: A registered network name (``colddiff.nets.available()`` lists them).
        net_kwargs: Arguments for the network.
        predict: ``"eps"``, ``"x0"`` or ``"v"``.
        loss: ``"mse"`` or ``"soft"`` (Soft Diffusion's, after corruption: :class:`~colddiff.Denoiser`).
        epochs: Number of passes over the training data.
        batch_size: Images per optimiser step (per process).
        lr: Adam learning rate.
        warmup: Optimiser steps of linear learning-rate warm-up from 0 (0: none).
        seed: Seed for the initial weights, the data order and the noise.
        ema: Decay of an exponential moving average of the weights used for sampling
            (e.g. 0.999), or ``None`` for none.
        ema_start: Optimiser steps before the average starts: at that step it restarts from the
            current weights, and until then sampling uses the raw weights (an average that
            starts at the random initialisation needs thousands of steps to forget it).
        sampler: A registered sampler name (``colddiff.samplers.available()`` lists them).
        sampler_kwargs: The sampler's options, e.g. ``{"variance": "posterior"}`` for ``ddpm``,
            ``{"algorithm": 2, "source": "estimate"}`` for ``cold``.
        clip_x0: Clamp predicted clean images to ``[0, 1]`` while sampling.
        sample_every: Save a grid of samples every this many epochs (0: never).
        sample_n: Images in that grid.
        sample_steps: Sampling steps for it (``None``: all ``T``).
        checkpoint_every: Also checkpoint every this many optimiser steps (0: only per epoch).
        max_minutes: Stop once training (over all sessions, sampling excluded) has taken this many
            minutes of wall time, mid-epoch if need be, with a checkpoint (``None``: no limit).
        keep_checkpoints: Keep ``epoch-NNN.pt`` beside ``last.pt``.
        precision: ``"auto"`` (the default: ``"bf16"`` where the device computes in bfloat16
            natively, else ``"fp32"``; bf16 measured to keep the samples' quality at equal
            epochs), ``"fp32"``, ``"bf16"`` or ``"fp16"``: the arithmetic of the network's
            forward pass in training and sampling (:mod:`colddiff.precision`; weights,
            optimiser and EMA stay float32, and ``"fp16"`` scales the gradients).
        compile: ``"off"``, or a :func:`torch.compile` mode for the network in training and
            sampling: ``"default"``, ``"reduce-overhead"`` (CUDA graphs, for the fixed shapes
            of training) or ``"max-autotune"``. The first steps of each session then compile;
            their time is reported apart (``compile_time_s``), not in ``images_per_s``.
        channels_last: Keep the network's weights and the images in the channels-last memory
            layout (faster convolutions on some GPUs under reduced precision).
        fmd_every: Score samples with FMD every this many epochs (0: never; MNIST only).
        fmd_n: Samples per FMD evaluation.
        fmd_protocol: ``"report"`` or ``"full"`` (see :func:`colddiff.fmd.score`).
        conditional: Train a class-conditional model on the data's labels
            (:mod:`colddiff.conditioning`): the network gets ``num_classes``.
        classes: The label set, class names in label order (training sets it from the data).
        cond_drop: The share of labels dropped to the null class in training (``None``: 0.1).
        guidance: The classifier-free guidance of the samples the model makes (``None``: 1).
        embedding_lr: Adam's learning rate for the class embedding (``None``: ``lr``). A
            fine-tune from an unconditional model (``init_from``), whose embedding starts at
            zero, needs it far above ``lr`` to learn the classes (the shipped recipe: 0.01).
        init_from: Start from the weights of a shipped model (by name) or a checkpoint file:
            the weights they share, the rest (a new class embedding) at zero. It must be the
            same model, save for the label set and the degradation's ``noise`` option.
    """

    dataset: str = "mnist"
    image_size: int | None = None
    channels: int | None = None
    on_error: str = "raise"
    data_workers: int = 2
    value_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    limit_train: int | None = None
    degradation: str = "gaussian"
    degradation_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=lambda: Schedule.preset("default").spec())
    net: str = "cnn"
    net_kwargs: dict[str, Any] = field(default_factory=lambda: {"channels": list(_REPORT_CHANNELS)})
    predict: str = "eps"
    loss: str = "mse"
    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 0
    seed: int = 0
    ema: float | None = None
    ema_start: int = 0
    sampler: str = "ddpm"
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    clip_x0: bool = True
    sample_every: int = 1
    sample_n: int = 64
    sample_steps: int | None = None
    checkpoint_every: int = 0
    max_minutes: float | None = None
    keep_checkpoints: bool = False
    precision: str = "auto"
    compile: str = "off"
    channels_last: bool = False
    fmd_every: int = 0
    fmd_n: int = 32
    fmd_protocol: str = "report"
    conditional: bool = False
    classes: list[str] | None = None
    cond_drop: float | None = None
    guidance: float | None = None
    embedding_lr: float | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ``ValueError`` naming the first bad one and what it accepts."""
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a dataset name ({', '.join(data.DATASETS)}), a folder "
                             f"or 'memory', got {self.dataset!r}")
        if self.image_size is None and self.dataset not in (*data.DATASETS, "memory"):
            raise ValueError(f"dataset {self.dataset!r} is not a dataset name ({', '.join(data.DATASETS)}); "
                             "as a folder of images it needs image_size, the size the "
                             "networks are built for")
        _choice("channels", self.channels, (None, 1, 3))
        if not isinstance(self.value_range, (list, tuple)) or list(self.value_range) not in ([0, 1], [-1, 1]):
            raise ValueError(f"value_range must be [0, 1] or [-1, 1], got {self.value_range!r}")
        self.value_range = [float(v) for v in self.value_range]
        _choice("on_error", self.on_error, ("raise", "skip"))
        _choice("predict", self.predict, ("eps", "x0", "v"))
        _choice("fmd_protocol", self.fmd_protocol, ("report", "full"))
        _choice("precision", self.precision, PRECISIONS)
        _choice("compile", self.compile, COMPILE_MODES)
        if not isinstance(self.sampler, str) or self.sampler not in samplers.available():
            known = ", ".join(samplers.available())
            raise ValueError(f"unknown sampler {self.sampler!r}; available: {known}")
        if not isinstance(self.net, str) or self.net not in nets.available():
            raise ValueError(f"unknown net {self.net!r}; available: {', '.join(nets.available())}")
        for name in ("epochs", "batch_size", "sample_n", "fmd_n"):
            _integer(name, getattr(self, name), minimum=1)
        for name in ("seed", "sample_every", "checkpoint_every", "warmup", "fmd_every", "ema_start",
                     "data_workers"):
            _integer(name, getattr(self, name), minimum=0)
        for name in ("limit_train", "sample_steps", "image_size"):
            if getattr(self, name) is not None:
                _integer(name, getattr(self, name), minimum=1)
        check_positive("lr", self.lr)
        if self.max_minutes is not None and not (
                isinstance(self.max_minutes, (int, float)) and math.isfinite(self.max_minutes)
                and self.max_minutes > 0):
            raise ValueError(f"max_minutes must be a number > 0 or None, got {self.max_minutes!r}")
        if self.ema is not None and not (isinstance(self.ema, (int, float)) and 0 < self.ema < 1):
            raise ValueError(f"ema must be a decay in (0, 1) or None, got {self.ema!r}")
        for name in ("degradation_kwargs", "schedule", "net_kwargs", "sampler_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a table (dict), got {getattr(self, name)!r}")
        for name in ("clip_x0", "keep_checkpoints", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        conditional_config.check_fields(self)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of the training images after ``image_size`` and ``channels`` (``None``
        for ``"memory"`` images without both: they say it themselves)."""
        native = data.DATASETS.get(self.dataset)
        channels = self.channels or (native[0] if native else None if self.dataset == "memory" else 3)
        if self.image_size is not None:
            height = width = self.image_size
        elif native is not None:
            height, width = native[1:]
        else:
            return None
        return (channels, height, width) if channels is not None else None

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (``None`` fields left out, as TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from plain data, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; accepted: {sorted(known)}")
        return cls(**values)

    def to_toml(self) -> str:
        """The config as TOML text (what ``config.toml`` holds)."""
        return to_toml(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_toml` to ``path`` (atomically: a crash leaves the old file whole)."""
        checkpoints.atomic_write_text(path, self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a config from a TOML file.

        Raises:
            ValueError: If the file is not valid TOML or holds unknown or invalid values.
        """
        try:
            values = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config {path} is not valid TOML: {error}") from error
        return cls.from_dict(values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """One of the presets of :data:`colddiff.presets.TRAINING` with ``overrides`` applied.

        Raises:
            ValueError: If ``name`` is not a preset (the message lists them).
        """
        if name not in presets.TRAINING:
            raise ValueError(f"preset must be one of {sorted(presets.TRAINING)}, got {name!r}")
        return cls.from_dict({**presets.TRAINING[name], **overrides})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (and validated).

        A new ``sampler`` without ``sampler_kwargs`` starts from no options (the old sampler's
        options are not the new one's).
        """
        if changes.get("sampler", self.sampler) != self.sampler and "sampler_kwargs" not in changes:
            changes = {**changes, "sampler_kwargs": {}}
        return type(self)(**{**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, **changes})


#: Fields that define the model; a checkpoint only resumes under the same values.
MODEL_FIELDS = ("degradation", "degradation_kwargs", "schedule", "net", "net_kwargs", "predict",
                "value_range", "loss", "conditional", "classes")

#: Fields that only say how a trained model samples (they never change the weights).
SAMPLING_FIELDS = ("sampler", "sampler_kwargs", "clip_x0", "sample_steps", "guidance")

#: Fields that only make training fast on some hardware (a shipped model runs with their defaults
#: unless its user asks otherwise).
SPEED_FIELDS = ("precision", "compile", "channels_last")


def model_differences(saved: dict[str, Any], current: TrainConfig,
                      fields: tuple[str, ...] = MODEL_FIELDS) -> list[str]:
    """The model-defining ``fields`` where a saved config (a field it lacks has its default)
    differs from ``current``, described."""
    now = current.to_dict()
    try:
        read: TrainConfig | None = TrainConfig.from_dict(saved)
    except ValueError:  # a config this version cannot read says so when it is loaded
        read = None
    then = read.to_dict() if read is not None else saved
    differences = [f"{name}: checkpoint has {then.get(name)!r}, config has {now.get(name)!r}"
                   for name in fields if then.get(name) != now.get(name)]
    shapes = (read.image_shape if read is not None else None, current.image_shape)
    if None not in shapes and shapes[0] != shapes[1]:
        differences.append(f"image shape: checkpoint has {shapes[0]}, config has {shapes[1]} "
                           "(dataset, image_size, channels)")
    return differences


def check_buildable(config: TrainConfig) -> None:
    """Build the config's model and sampler once: a combination that cannot work (``predict="eps"``
    or the DDPM sampler for blur, an unknown network option) fails before any data is read.

    Raises:
        ValueError: Saying which part refuses the config and why.
    """
    try:
        build_sampler(config, build_denoiser(config))
    except TypeError as error:  # e.g. an unknown keyword in net_kwargs or degradation_kwargs
        raise ValueError(f"config {config.degradation!r} / {config.net!r}: {error}") from error


def build_degradation(config: TrainConfig, image_shape: tuple[int, int, int] | None = None
                      ) -> Degradation:
    """The configured degradation, with its schedule and, if it takes one and
    ``degradation_kwargs`` does not set it, the images' ``image_shape`` (default: the config's)."""
    kwargs = _with_data_options(
        degradations.get(config.degradation), config.degradation_kwargs,
        image_shape=image_shape or config.image_shape,
        value_range=None if config.value_range == [0.0, 1.0] else tuple(config.value_range))
    return degradations.create(config.degradation, schedule=Schedule.from_spec(config.schedule), **kwargs)


def build_denoiser(config: TrainConfig, degradation: Degradation | None = None) -> Denoiser:
    """A freshly initialised denoiser for ``config`` (the current torch seed sets the weights).

    A network that takes ``in_channels``, ``image_size`` or (conditional) ``num_classes`` gets
    the images' unless ``net_kwargs`` sets them.
    """
    degradation = degradation if degradation is not None else build_degradation(config)
    shape = degradation.image_shape or config.image_shape
    kwargs = _with_data_options(nets.get(config.net), config.net_kwargs,
                                in_channels=shape[0] if shape else None,
                                image_size=tuple(shape[1:]) if shape else None,
                                num_classes=conditional_config.num_classes(config))
    return conditional_config.checked(config, Denoiser(
        nets.create(config.net, **kwargs), degradation, predict=config.predict,  # type: ignore[arg-type]
        precision=config.precision, loss=config.loss, cond_drop=config.cond_drop))  # type: ignore[arg-type]


def to_unit_range(images: Tensor, config: TrainConfig) -> Tensor:
    """Images from the config's ``value_range`` back to ``[0, 1]`` (unchanged for ``[0, 1]``)."""
    low, high = config.value_range
    return images if (low, high) == (0.0, 1.0) else (images - low) / (high - low)


def from_unit_range(images: Tensor, config: TrainConfig) -> Tensor:
    """Images in ``[0, 1]`` mapped to the config's ``value_range``."""
    low, high = config.value_range
    return images if (low, high) == (0.0, 1.0) else images * (high - low) + low


def _with_data_options(cls: type, kwargs: dict[str, Any], **options: object) -> dict[str, Any]:
    """``kwargs`` plus each of ``options`` (the data's shape, value range) that ``cls`` takes,
    is known and ``kwargs`` lacks."""
    accepted = inspect.signature(cls).parameters
    return {**{name: value for name, value in options.items()
               if value is not None and name in accepted and name not in kwargs}, **kwargs}


def build_sampler(config: TrainConfig, denoiser: Denoiser) -> Sampler:
    """The configured sampler for ``denoiser``: ``samplers.create(config.sampler, denoiser,
    clip_x0=config.clip_x0, **config.sampler_kwargs)``, with ``data_range`` set to the
    config's ``value_range`` when that is not ``[0, 1]``.

    Raises:
        ValueError: If the sampler does not take one of ``sampler_kwargs`` or a value is invalid.
    """
    extra = {} if config.value_range == [0.0, 1.0] else {"data_range": tuple(config.value_range)}
    return samplers.create(config.sampler, denoiser, clip_x0=config.clip_x0, **extra, **config.sampler_kwargs)


def _choice(name: str, value: object, accepted: tuple[object, ...]) -> None:
    if value not in accepted or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {list(accepted)}, got {value!r}")


def _integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
