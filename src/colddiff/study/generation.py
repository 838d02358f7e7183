"""Cold generation (issue 24): the generation recipes of cold diffusion and its successors, each
trained at equal compute on MNIST and scored side by side with Gaussian diffusion.

``colddiff reproduce --study cold-generation --out DIR`` trains every recipe of
:data:`colddiff.presets.GENERATION` (Gaussian noise as the yardstick; Fashion-MNIST mixing cold,
with noise, and with Soft Diffusion's loss and sampler; blur cold and hot; ``heat``;
``blurring``) with the same network, optimiser, batch and number of optimiser steps
(:data:`colddiff.presets.GENERATION_COMMON`), draws ``n_samples`` digits from each with its own
sampler, and scores them with the full FMD protocol (:func:`colddiff.fmd.score`): the FMD ratio
(the samples' Fréchet distance over that of as many real training digits; 1.0 is as good as real
data), the class histogram of the shipped MNIST classifier and its spread (the least and the most
frequent class's share; 10% each for a perfectly balanced generator). It writes::

    DIR/models/<recipe>/             each recipe's run folder (config, metrics, checkpoints)
    DIR/models/<recipe>/final.pt     its first samples and its scores
    DIR/figures/cold-generation.png  a row of samples per recipe
    DIR/results.json, DIR/report.md

Interrupted runs resume recipe by recipe; finished recipes are not retrained.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from colddiff import checkpoints, fmd, presets, pretrained
from colddiff.config import TrainConfig
from colddiff.study.models import ModelStudyOptions, finished, last_epoch, or_dash, write_results
from colddiff.training import Trainer

__all__ = ["FIGURE_IMAGES", "MODELS", "GenerationOptions", "class_spread", "draw_figures", "recipe_config",
           "run_study", "write_report"]

#: The study's recipes, in the order of its table.
MODELS = presets.STUDIES["cold-generation"]
#: Samples shown per recipe in the figure.
FIGURE_IMAGES = 12
_FIGURE = "cold-generation.png"


@dataclass
class GenerationOptions(ModelStudyOptions):
    """How to run the study; every recipe gets the same training budget.

    Attributes:
        out: The study folder.
        models: Which recipes of :data:`MODELS` to run.
        epochs: Training epochs per recipe (the same optimiser steps and batch for all).
        limit_train: Training images per epoch (``None``: all 60,000).
        n_samples: Samples drawn and scored per recipe (the issue's protocol: 1,000).
        sample_steps: At most this many sampling steps per recipe (``None``: each recipe's own,
            50, or 100 for ``heat``).
        channels: The U-Net's base channels (32, the shipped models').
        precision: Training arithmetic (``"bf16"`` trains about twice as fast on CPUs that
            support it; measure that it keeps the quality); sampling always runs in float32.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: Seed of training and of the samples.
        quiet: No progress output.
    """

    known_models: ClassVar[tuple[str, ...]] = MODELS
    models: tuple[str, ...] = MODELS
    epochs: int = 15
    n_samples: int = 1000
    sample_steps: int | None = None
    channels: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, least in (("n_samples", 2), ("channels", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        steps = self.sample_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"sample_steps must be an integer >= 1 or None, got {steps!r}")

    @classmethod
    def quick(cls, out: Path, **changes: Any) -> GenerationOptions:
        """The CI-sized study: 1 epoch on 256 images, an 8-channel U-Net, 4 sampling steps and
        32 samples per recipe (it tests the pipeline, not the recipes)."""
        return cls(out=out, **{"epochs": 1, "limit_train": 256, "n_samples": 32, "sample_steps": 4,
                               "channels": 8, **changes})


def recipe_config(name: str, options: GenerationOptions) -> TrainConfig:
    """The training config of recipe ``name``: :data:`~colddiff.presets.GENERATION_COMMON`, the
    recipe's changes and the study's budget."""
    values = copy.deepcopy({**presets.GENERATION_COMMON, **presets.GENERATION[name]})
    values["net_kwargs"]["channels"] = options.channels
    if options.sample_steps is not None:
        values["sample_steps"] = min(values["sample_steps"], options.sample_steps)
    return TrainConfig.from_dict({**values, "epochs": options.epochs, "limit_train": options.limit_train,
                                  "seed": options.seed, "precision": options.precision, "sample_every": 0,
                                  "checkpoint_every": 200})


def class_spread(histogram: list[int]) -> tuple[float, float]:
    """The least and the most frequent class's share of the samples (``0.1, 0.1`` when every
    class has a tenth)."""
    total = sum(histogram)
    return min(histogram) / total, max(histogram) / total


def _sample(model: pretrained.Pretrained, n: int, seed: int, batch: int = 250) -> tuple[torch.Tensor, float]:
    """``n`` samples in ``[0, 1]`` drawn in batches (each from its own seed) and the seconds they
    took."""
    start = time.perf_counter()
    samples = torch.cat([model.sample(min(batch, n - first), seed=seed + first).cpu()
                         for first in range(0, n, batch)])
    return samples, time.perf_counter() - start


def _finish(name: str, trainer: Trainer, options: GenerationOptions) -> None:
    """Sample the trained recipe (its EMA weights once the average has started; float32), score
    the samples and save ``final.pt``."""
    model = pretrained.from_checkpoint(trainer.checkpoint_path, device=trainer.device)
    model.denoiser.precision = "fp32"
    samples, seconds = _sample(model, options.n_samples, options.seed)
    result = fmd.score(samples, protocol="full", device=trainer.device)
    least, most = class_spread(result.class_histogram)
    last = last_epoch(trainer)
    config = trainer.config
    calls = len(model.sampler().timesteps(config.sample_steps)) - 1
    summary = {
        "recipe": name, "degradation": repr(model.denoiser.degradation), "predict": config.predict,
        "loss": config.loss, "sampler": config.sampler, "sampler_kwargs": config.sampler_kwargs,
        "network_calls": calls, "epochs": trainer.epoch, "optimiser_steps": trainer.step,
        "batch_size": config.batch_size, "limit_train": config.limit_train, "precision": config.precision,
        "ema": model.card["ema"], "final_loss": last["loss"] if last else None,
        "train_wall_time_s": last.get("wall_time_s") if last else None,
        "device": str(trainer.device), "n_samples": options.n_samples, "seed": options.seed,
        "fmd": result.fmd, "fmd_ratio": result.fmd_ratio, "train_baseline": result.train_baseline,
        "class_histogram": result.class_histogram, "min_class": least, "max_class": most,
        "sampling_seconds_per_sample": seconds / options.n_samples,
    }
    checkpoints.save({"samples": samples[:FIGURE_IMAGES], "summary": json.dumps(summary)},
                     Path(options.out) / "models" / name / "final.pt")


def run_study(options: GenerationOptions) -> dict[str, Any]:
    """Train, sample, score and record; returns what ``results.json`` holds: every finished
    recipe of the folder, in the order of :data:`MODELS`.

    A finished recipe is kept when it has at least ``options.epochs`` epochs and was scored on
    as many samples from the same seed; otherwise it trains on (from its checkpoint) and is
    scored again.
    """
    out = Path(options.out)
    for name in options.models:
        folder = out / "models" / name
        summary = finished(folder)
        if summary is not None and summary["epochs"] >= options.epochs and (
                summary["n_samples"], summary["seed"]) == (options.n_samples, options.seed):
            if not options.quiet:
                print(f"{name}: kept ({summary['epochs']} epoch(s), {summary['n_samples']} samples)")
            continue
        if not options.quiet:
            print(f"{name}: " + ("training" if summary is None else "training on and scoring again"))
        trainer = Trainer(recipe_config(name, options), folder, device=options.device, quiet=options.quiet,
                          overwrite=True)
        trainer.fit(resume=trainer.checkpoint_path.exists())
        _finish(name, trainer, options)
    return write_results("cold-generation", options, MODELS)


def draw_figures(folder: str | Path) -> list[str]:
    """Draw ``figures/cold-generation.png``: a row of samples per finished recipe, labelled with
    its FMD ratio.

    Returns:
        The file names written.

    Raises:
        ImportError: If matplotlib is missing (``pip install colddiff[plots]``).
    """
    from colddiff.study.plotting import pyplot, save_figure, show_images

    folder = Path(folder)
    names = list(json.loads((folder / "results.json").read_text())["models"])
    if not names:
        return []
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    figure, axes = pyplot().subplots(len(names), 1, figsize=(FIGURE_IMAGES * 0.8 + 2, 0.9 * len(names)),
                                     squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=True):
        saved = checkpoints.load(folder / "models" / name / "final.pt", required=("samples", "summary"))
        summary = json.loads(saved["summary"])
        show_images(axis, saved["samples"], len(saved["samples"]))
        axis.text(-0.01, 0.5, f"{name}\n{summary['fmd_ratio']:.2f}x", transform=axis.transAxes, ha="right",
                  va="center", fontsize=8)
    save_figure(figure, folder / "figures" / _FIGURE)
    return [_FIGURE]


def write_report(folder: str | Path, figures: list[str]) -> Path:
    """Write ``report.md``: each recipe's scores beside its training and sampling cost, from
    ``results.json``."""
    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    models = results["models"]
    yardstick = models.get("gaussian", {}).get("fmd_ratio")
    lines = [
        "# Cold generation: the recipes side by side with Gaussian diffusion",
        "",
        f"colddiff {results['colddiff_version']}. Each recipe trains the same U-Net with the same "
        "optimiser, batch and number of optimiser steps, then draws its samples with its own sampler "
        "(float32). FMD ratio: the samples' Fréchet distance (full protocol, colddiff's MNIST "
        "classifier) over that of as many real training digits; 1.0 is as good as real data. "
        "Classes: the shipped classifier's share of the least and the most frequent digit (10% each "
        "when balanced; the issue asks for every class between 7% and 13%).",
        "",
        "| recipe | degradation | loss | sampler | calls | FMD ratio | vs gaussian | least class "
        "| most class | epochs | steps | training s | sampling s/sample |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in models.items():
        relative = "-" if not yardstick else f"{s['fmd_ratio'] / yardstick:.2f}x"
        lines.append(
            f"| {name} | `{s['degradation']}` | {s['loss']} | {s['sampler']} {s['sampler_kwargs'] or ''} "
            f"| {s['network_calls']} | {s['fmd_ratio']:.2f} | {relative} | {100 * s['min_class']:.1f}% "
            f"| {100 * s['max_class']:.1f}% | {s['epochs']} | {s['optimiser_steps']} "
            f"| {or_dash(s['train_wall_time_s'], '.0f')} | {s['sampling_seconds_per_sample']:.3f} |")
    untrained = [name for name, s in models.items() if not s["ema"]]
    if untrained:
        lines += ["", f"**Barely trained:** {', '.join(untrained)} stopped before the EMA average started "
                  "(a `--quick` run): these rows test the pipeline, not the recipes."]
    lines += ["", "Class histograms (digits 0-9):", ""]
    lines += [f"- {name}: {s['class_histogram']} of {s['n_samples']} samples (seed {s['seed']}, "
              f"{s['precision']} training on {s['device']})" for name, s in models.items()]
    lines += [""] + [f"![{name}](figures/{name})\n" for name in figures]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
