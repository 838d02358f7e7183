"""Bansal et al.'s MNIST restoration study (2022, section 4, Tables 1-3), run with colddiff.

``colddiff reproduce --study bansal-mnist --out DIR`` trains one restoration model per
degradation (:data:`colddiff.presets.RESTORATION`: blur, inpainting, super-resolution), then
degrades ``n_test`` MNIST test digits fully (to ``t = T``) and restores them two ways, as the
paper's tables do: "direct", one call of the network ``R(x_T, T)``, and "sampled", Bansal's
Algorithm 2 from ``T`` down to 0. The degraded, direct and sampled images are scored against
the clean digits by FMD (our stand-in for FID: the Fréchet distance of an MNIST classifier's
features, between the set of images and the set of their clean originals), SSIM, PSNR and RMSE
(:mod:`colddiff.metrics`, means over the images). It writes::

    DIR/models/<preset>/            each model's run folder (config, metrics, checkpoints)
    DIR/models/<preset>/final.pt    the first images of each row and the scores
    DIR/figures/bansal-<preset>.png a row each of clean, degraded, direct and sampled digits
    DIR/results.json, DIR/report.md

Interrupted runs resume model by model; finished models are not retrained.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from colddiff import checkpoints, data, fmd, presets, pretrained, restoration
from colddiff.config import TrainConfig
from colddiff.progress import progress_bar
from colddiff.study.models import ModelStudyOptions, finished, last_epoch, or_dash, write_results
from colddiff.training import Trainer

__all__ = ["FIGURE_IMAGES", "MAX_TEST", "MODELS", "PROTOCOL", "ROWS", "BansalOptions", "draw_figures",
           "evaluate", "run_study", "write_report"]

#: The study's models (presets), in the order of the paper's tables.
MODELS = presets.STUDIES["bansal-mnist"]
#: What each model's table row scores: the input and its two reconstructions.
ROWS = ("degraded", "direct", "sampled")
#: Test digits shown in each figure.
FIGURE_IMAGES = 8
#: Most test digits a study restores: the next as many give the real-image FMD floor.
MAX_TEST = 5000

#: How this study differs from the paper's, for the report (and the docs).
PROTOCOL = (
    "## How this differs from Bansal et al. (2022)",
    "",
    "- **FMD, not FID.** The distance is the Fréchet distance of the features of colddiff's MNIST "
    "classifier (1024-d), not of Inception, so its values are not on FID's scale: compare rows "
    "with each other and with the real-image floor, not with the paper's FID column. SSIM "
    "(Wang et al. 2004, 11x11 Gaussian window, valid region) and RMSE are on the same [0, 1] "
    "scale as the paper's.",
    "- **Network and training.** colddiff's small U-Net (32 channels, 1.2 M parameters) predicting "
    "the clean image with a mean-squared-error loss, batch 128, Adam at 5e-4 with 500 warm-up "
    "steps, EMA 0.999, for the epochs above. The paper's code (arpitbansal297/Cold-Diffusion-Models, "
    "the MNIST scripts) trains a U-Net of 64 base channels (multipliers 1, 2, 4, 8) with an L1 "
    "loss, batch 32 with 2 accumulated, Adam at 2e-5, EMA 0.995, for 700,000 steps, on MNIST "
    "resized to 32x32.",
    "- **Degradations.** Blur: one Gaussian of width 6 sqrt(t / T) pixels, T = 20, where the "
    "paper's code applies an 11x11 Gaussian kernel of standard deviation 7 t times (T = 20). "
    "Inpainting: the paper's growing Gaussian masks with random centres, T = 50; the mask "
    "centres are given to the restorer. Super-resolution: two halvings of the 28x28 digits "
    "(down to 7x7), where the paper's code halves 32x32 digits three times (down to 4x4).",
    "- **Sets.** The first n test digits are restored and scored against themselves, at 28x28.",
    "- **The paper's numbers.** Bansal et al.'s MNIST rows of Tables 1-3 (FID, SSIM, RMSE) are "
    "not copied here: they could not be checked against the paper when this study was written. "
    "Their SSIM and RMSE are on this table's scale and can be set beside it; their FID cannot.",
)


@dataclass
class BansalOptions(ModelStudyOptions):
    """How to run the study.

    Attributes:
        out: The study folder.
        models: Which of :data:`MODELS` to run.
        epochs: Training epochs per model.
        limit_train: Training images per epoch (``None``: all 60,000).
        n_test: Test digits degraded, restored and scored (the first ``n_test`` of the test set;
            the next ``n_test`` give the real-image FMD floor).
        precision: Training arithmetic (``"bf16"`` trains about twice as fast on CPUs and GPUs
            that support it); evaluation always runs in float32.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: Seed of training and of the degradations' sources (inpainting's mask centres).
        quiet: No progress output.
    """

    known_models: ClassVar[tuple[str, ...]] = MODELS
    models: tuple[str, ...] = MODELS
    epochs: int = 20
    n_test: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        n_test = self.n_test
        if isinstance(n_test, bool) or not isinstance(n_test, int) or not 2 <= n_test <= MAX_TEST:
            raise ValueError(f"n_test must be an integer in [2, {MAX_TEST}] (the next n_test test digits "
                             f"give the real-image floor), got {self.n_test!r}")

    @classmethod
    def quick(cls, out: Path, **changes: Any) -> BansalOptions:
        """The CI-sized study: 1 epoch on 512 images, 64 test digits."""
        return cls(out=out, **{"epochs": 1, "limit_train": 512, "n_test": 64, **changes})


def evaluate(model: pretrained.Pretrained, clean: Tensor, reference: Tensor, *, seed: int = 0,
             batch_size: int = 250, progress: bool = False) -> dict[str, Any]:
    """Degrade ``clean`` to ``T``, restore it directly and by sampling, and score all three.

    Args:
        model: A restoration model.
        clean: ``(N, C, H, W)`` clean test images in ``[0, 1]``.
        reference: ``N`` other real images: the FMD between them and ``clean`` is that of two
            independent real sets at this ``N`` (FMD, like FID, is biased upwards at small
            ``N``). Restorations are paired with ``clean`` and can score below it.
        seed: Seed of the degradation's source.
        batch_size: Images restored at once.
        progress: Show a bar over the images restored, on a terminal (:mod:`colddiff.progress`).

    Returns:
        ``{"images": {row: (N, C, H, W) tensors in [0, 1]}, "scores": {row: {"fmd", "ssim",
        "psnr", "rmse"}}, "real_fmd": float, "restore_seconds_per_image": float}`` (the time of
        both restorations, first-call warm-up included).
    """
    total = model.denoiser.num_timesteps
    degraded, source = model.degrade(clean, total, seed=seed)  # restored as degraded, noise and all
    direct, sampled = [], []
    start = time.perf_counter()
    with progress_bar(progress, len(clean), f"restoring {len(clean)}", unit="img") as bar:
        for first in range(0, len(clean), batch_size):
            part = slice(first, first + batch_size)
            one_step, iterated = model.restore(degraded[part], total, seed=seed + first,
                                               source=None if source is None else source[part])
            direct.append(one_step.cpu())
            sampled.append(iterated.cpu())
            bar.update(len(one_step))
    seconds = time.perf_counter() - start
    images = {"degraded": degraded.clamp(0, 1), "direct": torch.cat(direct), "sampled": torch.cat(sampled)}
    # One classifier and one pass over the clean digits for every distance.
    metric = fmd.FMD(device=next(model.denoiser.parameters()).device, across_processes=False)
    metric.update(clean, real=True)
    clean_statistics = metric.real

    def distance_to_clean(others: Tensor) -> float:
        metric.reset(real=clean_statistics)
        metric.update(others, real=False)
        return metric.compute()

    scores = {row: {"fmd": distance_to_clean(row_images), **restoration.scores(row_images, clean)}
              for row, row_images in images.items()}
    return {"images": images, "scores": scores, "real_fmd": distance_to_clean(reference),
            "restore_seconds_per_image": seconds / len(clean)}


def _train(preset: str, folder: Path, options: BansalOptions) -> Trainer:
    """Train one model in its run folder, resuming a checkpoint there (a model trained beforehand
    with its preset trains on to ``options.epochs`` if it has fewer)."""
    config = TrainConfig.preset(preset, epochs=options.epochs, limit_train=options.limit_train,
                                seed=options.seed, sample_every=0, checkpoint_every=200,
                                precision=options.precision)
    trainer = Trainer(config, folder, device=options.device, quiet=options.quiet, overwrite=True)
    trainer.fit(resume=trainer.checkpoint_path.exists())
    return trainer


def _finish_model(trainer: Trainer, folder: Path, options: BansalOptions) -> None:
    """Evaluate the trained model (its EMA weights once the average has started; float32) and
    save ``final.pt``."""
    model = pretrained.from_checkpoint(trainer.checkpoint_path, device=trainer.device)
    model.denoiser.precision = "fp32"
    test = data.mnist(train=False, limit=2 * options.n_test).images
    clean = test[:options.n_test]
    result = evaluate(model, clean, test[options.n_test:], seed=options.seed, progress=not options.quiet)
    last = last_epoch(trainer)
    summary = {
        "preset": folder.name, "degradation": repr(model.denoiser.degradation),
        "T": model.denoiser.num_timesteps, "epochs": trainer.epoch, "optimiser_steps": trainer.step,
        "limit_train": trainer.config.limit_train, "precision": trainer.config.precision,
        "ema": model.card["ema"], "final_loss": last["loss"] if last else None,
        "images_per_s": last.get("images_per_s") if last else None,
        "train_wall_time_s": last.get("wall_time_s") if last else None,
        "device": str(trainer.device), "n_test": options.n_test, "seed": options.seed,
        "scores": result["scores"], "real_fmd": result["real_fmd"],
        "restore_seconds_per_image": result["restore_seconds_per_image"],
    }
    shown = {row: images[:FIGURE_IMAGES] for row, images in result["images"].items()}
    checkpoints.save({"clean": clean[:FIGURE_IMAGES], **shown, "summary": json.dumps(summary)},
                     folder / "final.pt")


def _answers(summary: dict[str, Any], options: BansalOptions) -> bool:
    """Whether a finished model's evaluation is the one ``options`` ask for."""
    return bool(summary["epochs"] >= options.epochs and summary["n_test"] == options.n_test
                and summary["seed"] == options.seed)


def run_study(options: BansalOptions) -> dict[str, Any]:
    """Train, evaluate and record; returns what ``results.json`` holds: every finished model
    of the folder, in the order of :data:`MODELS`.

    A finished model is kept when it has at least ``options.epochs`` epochs and was scored on
    the same ``n_test`` digits with the same seed; otherwise it trains on (from its checkpoint)
    and is scored again.
    """
    out = Path(options.out)
    for preset in options.models:
        folder = out / "models" / preset
        summary = finished(folder)
        if summary is not None and _answers(summary, options):
            if not options.quiet:
                print(f"{preset}: kept ({summary['epochs']} epoch(s), scored on {summary['n_test']} digits)")
            continue
        if not options.quiet:
            print(f"{preset}: " + ("training" if summary is None else "training on and scoring again"))
        _finish_model(_train(preset, folder, options), folder, options)
    return write_results("bansal-mnist", options, MODELS)


def draw_figures(folder: str | Path) -> list[str]:
    """Draw ``figures/bansal-<preset>.png`` for each finished model: rows of clean, degraded,
    direct and sampled digits, like the paper's restoration figures.

    Returns:
        The file names written.

    Raises:
        ImportError: If matplotlib is missing (``pip install colddiff[plots]``).
    """
    from colddiff.study.plotting import pyplot, save_figure, show_images

    plt = pyplot()
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    written = []
    for preset in json.loads((folder / "results.json").read_text())["models"]:
        saved = checkpoints.load(folder / "models" / preset / "final.pt",
                                 required=("clean", *ROWS, "summary"))
        summary = json.loads(saved["summary"])
        labels = ("clean", *ROWS)
        width = 1.0 * len(saved["clean"]) + 1
        figure, axes = plt.subplots(len(labels), 1, figsize=(width, 1.1 * len(labels)))
        for axis, label in zip(axes, labels, strict=True):
            show_images(axis, saved[label], len(saved[label]))
            axis.text(-0.01, 0.5, label, transform=axis.transAxes, ha="right", va="center", fontsize=9)
        figure.suptitle(f"{summary['preset']}: {summary['degradation']}, restored from "
                        f"t = T = {summary['T']}", fontsize=9)
        name = f"bansal-{summary['preset']}.png"
        save_figure(figure, folder / "figures" / name)
        written.append(name)
    return written


def write_report(folder: str | Path, figures: list[str]) -> Path:
    """Write ``report.md``: the table rows of each model, their training and the figures, from
    ``results.json``."""
    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    lines = [
        "# Bansal et al.'s MNIST restoration study, run with colddiff",
        "",
        f"colddiff {results['colddiff_version']}. Each model's first n MNIST test digits are degraded "
        "to t = T, restored in one step (direct) and with Algorithm 2 (sampled), and every row is "
        "scored against the clean digits (evaluation in float32). FMD: the Fréchet distance "
        "between the row and the clean digits in colddiff's MNIST classifier features; SSIM, PSNR, "
        "RMSE: means over the digits.",
        "",
        "| model | degradation | T | row | FMD | SSIM | PSNR (dB) | RMSE |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, summary in results["models"].items():
        for row in ROWS:
            score = summary["scores"][row]
            lines.append(f"| {preset} | `{summary['degradation']}` | {summary['T']} | {row} "
                         f"| {score['fmd']:.2f} | {score['ssim']:.3f} | {score['psnr']:.2f} "
                         f"| {score['rmse']:.3f} |")
    untrained = [preset for preset, summary in results["models"].items() if not summary["ema"]]
    if untrained:
        lines += ["", f"**Barely trained:** {', '.join(untrained)} stopped before the EMA average "
                  "started (a `--quick` run): these rows test the pipeline, not the method. An untrained "
                  "network predicts a nearly flat image, which Algorithm 2 barely moves from its start."]
    lines += ["", "Each model's training and evaluation. Real FMD: the clean digits against as many "
              "other test digits, two independent sets of real digits; a restored row is paired with "
              "the clean digits it is scored against (inpainting keeps their visible parts), so it "
              "can score below it.", "",
              "| model | epochs | training images | precision | EMA | final loss | training s | n "
              "| seed | real FMD | restoring s/image |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for preset, summary in results["models"].items():
        lines.append(
            f"| {preset} | {summary['epochs']} | {summary['limit_train'] or 60000} | {summary['precision']} "
            f"| {'yes' if summary['ema'] else 'no'} | {or_dash(summary['final_loss'], '.5f')} "
            f"| {or_dash(summary['train_wall_time_s'], '.0f')} | {summary['n_test']} | {summary['seed']} "
            f"| {summary['real_fmd']:.2f} | {summary['restore_seconds_per_image']:.4f} |")
    lines += ["", *PROTOCOL, ""]
    lines += [f"![{name}](figures/{name})\n" for name in figures]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
