"""Pretrained models shipped inside the package: sample in seconds, with no data and no training.

``load(name)`` returns a :class:`Pretrained` (denoiser, sampler, model card). Weights are stored
in float16, checked against the SHA-256 in their card, and loaded with ``weights_only=True``.
Each card records the training command and config, the seed, the training time on the machine
that trained it, and the scores measured by ``benchmarks/quality.py``.

``export(checkpoint, name)`` turns a training checkpoint (its EMA weights when it has them) into
such a pair of files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colddiff import checkpoints, user_warnings
from colddiff.conditioning import labels_for
from colddiff.config import (
    SAMPLING_FIELDS,
    SPEED_FIELDS,
    TrainConfig,
    build_denoiser,
    build_sampler,
    check_buildable,
    from_unit_range,
    to_unit_range,
)
from colddiff.denoisers import Denoiser
from colddiff.progress import sampling_progress
from colddiff.samplers import Sampler
from colddiff.sampling import generate

__all__ = ["Pretrained", "PretrainedError", "available", "export", "from_checkpoint", "grids_file", "load",
           "model_weights", "tuned_grids", "weights_dir"]


class PretrainedError(RuntimeError):
    """A pretrained model is unknown, missing or altered."""


def weights_dir() -> Path:
    """The folder holding the shipped ``NAME.pt`` / ``NAME.json`` pairs."""
    return Path(str(resources.files("colddiff.pretrained") / "weights"))


def available() -> list[str]:
    """Names of the shipped pretrained models."""
    return sorted(p.stem for p in weights_dir().glob("*.json"))


@dataclass
class Pretrained:
    """A shipped model, ready to sample.

    Attributes:
        name: Its name (``"mnist-ddpm"``...).
        config: The training config it was trained with.
        denoiser: The denoiser, in eval mode, with the (EMA) weights.
        card: The model card (training command, time, scores).
    """

    name: str
    config: TrainConfig
    denoiser: Denoiser
    card: dict[str, Any]

    def sampler(self, name: str | None = None, **options: Any) -> Sampler:
        """The sampler ``name`` over the model's denoiser, as ``colddiff.samplers.create(name,
        denoiser, **options)``; by default the one it ships with.

        ``options`` are added to the shipped sampler's own (``config.sampler_kwargs``) when
        ``name`` is that sampler or ``None``, and replace them for another sampler (e.g.
        ``model.sampler("dpmsolver++", order=2)``). ``clip_x0`` defaults to the config's.

        Raises:
            ValueError: If the sampler is unknown or does not take one of the options.
        """
        config = self.config
        name = config.sampler if name is None else name
        kept = config.sampler_kwargs if name == config.sampler else {}
        clip_x0 = options.pop("clip_x0", config.clip_x0)
        changed = config.replace(sampler=name, sampler_kwargs={**kept, **options}, clip_x0=clip_x0)
        return build_sampler(changed, self.denoiser)

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The label set of a conditional model (class names in label order), else ``None``."""
        return tuple(self.config.classes) if self.config.conditional and self.config.classes else None

    def labels(self, requested: Sequence[int | str]) -> Tensor:
        """The label of each of the ``requested`` classes, each named by its name in
        :attr:`classes` or by its index (:func:`colddiff.conditioning.labels_for`).

        Raises:
            ValueError: If the model is unconditional, or a class is not in its label set.
        """
        if self.classes is None:
            raise ValueError(f"labels given to an unconditional model ({self.name}): it has no classes")
        return torch.tensor(labels_for(requested, self.classes), dtype=torch.long)

    def sample(self, n: int, sample_steps: int | None = None, seed: int = 0, *, sampler: str | None = None,
               progress: bool = False, labels: Tensor | Sequence[int | str] | None = None,
               guidance: float | None = None, **sampler_options: Any) -> Tensor:
        """``n`` samples in ``[0, 1]``, through :func:`colddiff.sampling.generate`.

        A degradation whose prior is learned (blur) gets it fitted first on the config's
        training images, as ``colddiff sample`` does. With no ``sampler`` and no options, a
        ``sample_steps`` for which the card holds a tuned grid (:meth:`tuned_grid`,
        ``colddiff tune-steps``) samples with that grid and its sampler. A conditional model
        samples the classes ``labels`` (default: an equal share of each) with classifier-free
        ``guidance`` (default: the card's, ``config.guidance``, else 1).

        Args:
            n: How many.
            sample_steps: Sampling steps (default: the card's, else all ``T``; with an explicit
                grid of steps as ``spacing``, that grid's).
            seed: Seed of the start and of a stochastic sampler.
            sampler: Another sampler than the shipped one, by name (see :meth:`sampler`).
            progress: Show a bar over the sampling steps on a terminal (:mod:`colddiff.progress`).
            labels: The class of each sample, ``(n,)``: a tensor of indices, or class names or
                indices (see :meth:`labels`).
            guidance: The classifier-free guidance scale, ``>= 0``.
            sampler_options: Sampler options, as for :meth:`sampler`.

        Raises:
            colddiff.degradations.PriorUnavailableError: If the model's prior needs data that is
                missing (``mnist-fashion-cold`` starts from Fashion-MNIST test images), or it has
                none to draw from (super-resolution, inpainting: restore degraded images instead).
            ValueError: If the sampler does not take one of the options, or labels or guidance
                are given to an unconditional model or are invalid.
        """
        tuned = self.tuned_grid(sample_steps) if sampler is None and not sampler_options else None
        if tuned is not None:
            sampler, sampler_options = tuned["sampler"], tuned["sampler_kwargs"]
        chosen = self.sampler(sampler, **sampler_options)
        explicit_grid = isinstance(getattr(getattr(chosen, "grid", None), "spacing", None), tuple)
        if sample_steps is None and not explicit_grid:
            sample_steps = self.config.sample_steps
        device = next(self.denoiser.parameters()).device
        generator = torch.Generator(device).manual_seed(seed)
        if labels is not None and not isinstance(labels, Tensor):
            labels = self.labels(labels)
        return generate(chosen, n, sample_steps=sample_steps, generator=generator,
                        config=self.config, progress=progress, labels=labels, guidance=guidance)

    def tuned_grid(self, sample_steps: int | None) -> dict[str, Any] | None:
        """The card's tuned grid for ``sample_steps`` network calls (``card["step_grids"]``,
        written by ``colddiff tune-steps``): ``{"sampler": ..., "sampler_kwargs": {...,
        "spacing": ...}, ...}`` with its scores, or ``None`` when there is none."""
        grids = self.card.get("step_grids") or {}
        return grids.get(str(sample_steps)) if sample_steps is not None else None

    def degrade(self, clean: Tensor, t: int, seed: int = 0) -> tuple[Tensor, Tensor | None]:
        """Degrade clean images to step ``t`` as in training, to try :meth:`restore` on them.

        Args:
            clean: ``(N, C, H, W)`` images in ``[0, 1]``.
            t: The step, in ``[0, T]``.
            seed: Seed of the degradation's source (inpainting's mask centres, noise).

        Returns:
            ``(degraded, source)``: the images on the ``[0, 1]`` scale (not clamped: noise may
            leave it), and the source :meth:`restore` is to be given where the degradation's
            restorer sees it (:attr:`~colddiff.Degradation.source_is_given`), else ``None``.

        Raises:
            ValueError: If ``t`` is out of range or the images do not fit the degradation.
        """
        degradation = self.denoiser.degradation
        # Drawn on the CPU, so that a seed gives the same source on every device.
        source = degradation.sample_source(clean.cpu(), generator=torch.Generator().manual_seed(seed))
        source = source.to(clean.device) if source is not None else None
        degraded = to_unit_range(degradation.degrade(from_unit_range(clean, self.config), t, source),
                                 self.config)
        return degraded, source if degradation.source_is_given else None

    def restore(self, degraded: Tensor, t: int, sample_steps: int | None = None, *,
                source: Tensor | None = None, seed: int = 0, sampler: str | None = None,
                progress: bool = False, **sampler_options: Any) -> tuple[Tensor, Tensor]:
        """Restore images degraded to step ``t`` two ways (Bansal et al. 2022, section 4): the
        one-step "direct" reconstruction ``R(x_t, t)`` and the "sampled" one, the model's sampler
        run from ``t`` down to 0 (``sample_steps`` of them; default all ``t``).

        Args:
            degraded: ``(N, C, H, W)`` images on the ``[0, 1]`` scale (noise may leave it),
                degraded to step ``t``.
            t: Their step, in ``[1, T]``.
            sample_steps: Steps of the sampled reconstruction.
            source: The degradation's source of each image where the sampler needs it (the mask
                centres of ``inpaint`` with random centres).
            seed: Seed of a stochastic sampler.
            sampler: Another sampler than the shipped one, by name (see :meth:`sampler`).
            progress: Show a bar over the sampled restoration's steps on a terminal
                (:mod:`colddiff.progress`).
            sampler_options: Sampler options, as for :meth:`sampler`.

        Returns:
            ``(direct, sampled)``, both in ``[0, 1]``.

        Raises:
            ValueError: If ``t`` is out of range or the images do not fit the model.
        """
        total = self.denoiser.num_timesteps
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= total:
            raise ValueError(f"t must be an integer in [1, {total}] (the model's T), got {t!r}")
        if not isinstance(degraded, Tensor):
            raise ValueError(f"degraded must be a tensor (N, C, H, W), got {type(degraded).__name__}")
        device = next(self.denoiser.parameters()).device
        x_t = from_unit_range(degraded.to(device), self.config)
        source = source.to(device) if source is not None else None
        generator = torch.Generator(device).manual_seed(seed)
        # Sampled first: the sampler checks the batch (shape, dtype, finite) before the network runs.
        chosen = self.sampler(sampler, **sampler_options)
        description = f"restoring {len(x_t)}"
        with sampling_progress(progress, chosen, sample_steps, description, t_start=t) as callback:
            sampled = chosen.sample(x_t, sample_steps, t_start=t, source=source, generator=generator,
                                    callback=callback)
        with torch.inference_mode():
            direct = self.denoiser.eval().predict_x0(x_t, torch.full((len(x_t),), t, device=device))
        return (to_unit_range(direct, self.config).clamp(0, 1),
                to_unit_range(sampled, self.config).clamp(0, 1))


def load(name: str, device: str | torch.device = "cpu") -> Pretrained:
    """Load the shipped model ``name``.

    Raises:
        PretrainedError: If the name is unknown (the message lists the shipped ones) or the
            weights do not match their card's SHA-256.
    """
    if name not in available():
        raise PretrainedError(f"name must be one of {available()}, got {name!r}")
    try:
        state, card = checkpoints.load_with_card(weights_dir() / f"{name}.pt", required=("model", "config"))
    except checkpoints.CheckpointError as error:
        raise PretrainedError(str(error)) from error
    return _model(name, state, card, device, ema=False)


def from_checkpoint(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> Pretrained:
    """A training checkpoint as a :class:`Pretrained`: its EMA weights unless ``ema=False`` or
    the average has not started yet (before ``ema_start``), when the raw ones; its card says
    which (``card["ema"]``), its optimiser step (``card["optimiser_steps"]``) and the grids
    ``colddiff tune-steps`` tuned for it (``card["step_grids"]``, from :func:`grids_file`).

    Raises:
        colddiff.checkpoints.CheckpointError: If the file is not a usable checkpoint.
    """
    path = Path(path)
    state = checkpoints.load(path)
    card: dict[str, Any] = {"ema": ema and _ema_started(state), "optimiser_steps": state.get("step")}
    grids = tuned_grids(path, state, ema)
    if grids:
        card["step_grids"] = grids
    return _model(path.stem, state, card, device, ema=ema)


def grids_file(checkpoint: str | Path) -> Path:
    """Where ``colddiff tune-steps`` keeps a checkpoint's tuned grids: ``CHECKPOINT.grids.json``."""
    return Path(checkpoint).with_suffix(".grids.json")


def tuned_grids(checkpoint: Path, state: dict[str, Any], ema: bool | None = None) -> dict[str, Any]:
    """The tuned grids beside ``checkpoint`` (:func:`grids_file`), when they were tuned for these
    weights (the same optimiser step, and the EMA or raw weights as ``ema`` says; ``None``: the
    EMA's when started, as :func:`export` ships); ``{}`` otherwise, with a warning for stale or
    unreadable ones."""
    path = grids_file(checkpoint)
    if not path.is_file():
        return {}
    weights = _ema_started(state) if ema is None else ema and _ema_started(state)
    try:
        grids = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        user_warnings.warn(f"{path} is not readable ({error}); its grids are not used")
        return {}
    if not isinstance(grids, dict) or not isinstance(grids.get("step_grids"), dict):
        user_warnings.warn(f"{path} holds no step_grids; it is not used")
        return {}
    tuned_for = (grids.get("optimiser_steps"), grids.get("ema"))
    if state.get("step") is None or tuned_for != (state.get("step"), weights):
        user_warnings.warn(f"{path} was tuned for the weights of step {tuned_for[0]} (EMA: {tuned_for[1]}), "
                           f"not {state.get('step')} (EMA: {weights}): its grids are not used (run colddiff "
                           "tune-steps again)")
        return {}
    return dict(grids["step_grids"])


def model_weights(source: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The config (as plain data) and the float32 weights of a shipped model, by name, or of a
    checkpoint file (its EMA weights once the average has started, else the raw ones).

    Raises:
        PretrainedError: If a shipped model's weights do not match their card.
        colddiff.checkpoints.CheckpointError: If the file is not a usable checkpoint.
    """
    if str(source) in available():
        try:
            state, _ = checkpoints.load_with_card(weights_dir() / f"{source}.pt",
                                                  required=("model", "config"))
        except checkpoints.CheckpointError as error:
            raise PretrainedError(str(error)) from error
    else:
        state = checkpoints.load(source)
    return state["config"], {key: value.float() if value.is_floating_point() else value
                             for key, value in _weights(state, ema=True).items()}


def _ema_started(state: dict[str, Any]) -> bool:
    """Whether a checkpoint holds an EMA average that has started (before ``ema_start`` the
    average holds nothing yet)."""
    return state.get("ema") is not None and int(state["ema"]["n_averaged"]) > 0


def _weights(state: dict[str, Any], ema: bool) -> dict[str, Tensor]:
    """The model weights of a checkpoint: the EMA average's when asked for and started, else
    the raw weights."""
    if ema and _ema_started(state):
        return {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    return dict(state["model"])


def _model(name: str, state: dict[str, Any], card: dict[str, Any], device: str | torch.device,
           ema: bool) -> Pretrained:
    config = TrainConfig.from_dict(state["config"])
    denoiser = build_denoiser(config)
    denoiser.net.load_state_dict({k: v.float() if v.is_floating_point() else v
                                  for k, v in _weights(state, ema).items()})
    return Pretrained(name, config, denoiser.to(device).eval(), card)


def export(checkpoint: str | Path, name: str, out: str | Path, card: dict[str, Any] | None = None,
           sampling: dict[str, Any] | None = None) -> Path:
    """Write ``OUT/NAME.pt`` (float16 weights, the EMA ones when present) and ``OUT/NAME.json``.

    Args:
        checkpoint: A training checkpoint (``checkpoints/last.pt``).
        name: The model's name.
        out: The folder to write to.
        card: Extra fields for the model card (command, scores...).
        sampling: How the shipped model samples, where that differs from how its training run
            sampled: any of :data:`colddiff.config.SAMPLING_FIELDS` (e.g. ``{"sampler": "ddpm",
            "sampler_kwargs": {"variance": "posterior"}}``). These never change the weights; the
            card records each change as ``{"trained": ..., "shipped": ...}`` under
            ``sampling_changes``. The speed settings of training (precision, compile,
            channels-last) are left at their defaults (auto, off, off) in a shipped model, and
            recorded likewise under ``speed_changes``.

    Returns:
        The card's path.

    Raises:
        ValueError: If ``sampling`` names a field outside ``SAMPLING_FIELDS`` or an invalid value.
    """
    unknown = sorted(set(sampling or {}) - set(SAMPLING_FIELDS))
    if unknown:
        raise ValueError(f"sampling keys must be among {list(SAMPLING_FIELDS)}, got {unknown}")
    state = checkpoints.load(checkpoint)
    trained = TrainConfig.from_dict(state["config"])
    defaults = TrainConfig()
    shipped = trained.replace(**{key: getattr(defaults, key) for key in SPEED_FIELDS}, **(sampling or {}))
    check_buildable(shipped)
    config = shipped.to_dict()
    changes = {kind: {key: {"trained": getattr(trained, key), "shipped": getattr(shipped, key)}
                      for key in fields if getattr(trained, key) != getattr(shipped, key)}
               for kind, fields in (("sampling_changes", SAMPLING_FIELDS), ("speed_changes", SPEED_FIELDS))}
    half = {k: v.half() if v.is_floating_point() else v for k, v in _weights(state, ema=True).items()}
    record = {"name": name, "config": config, "epochs": state["epoch"], "optimiser_steps": state["step"],
              "train_wall_time_s": round(state["wall_time_s"], 1),
              "train_cpu_time_s": round(state["cpu_time_s"], 1),
              "ema": _ema_started(state),
              **({"classes": shipped.classes} if shipped.conditional else {}),
              "colddiff_version": state["colddiff_version"],
              **{kind: fields for kind, fields in changes.items() if fields},
              **({"step_grids": grids} if (grids := tuned_grids(Path(checkpoint), state)) else {}),
              **(card or {})}
    path = Path(out) / f"{name}.pt"
    checkpoints.save_with_card({"model": half, "config": config}, path, record)
    return path.with_suffix(".json")
