"""The reference study's figures 1-14, drawn from a :mod:`colddiff.study.reference` study folder.

``draw_figures(folder)`` reads ``models/*/metrics.jsonl``, ``evaluations/`` and ``final.pt``
and writes ``figures/figNN-*.png``; it needs matplotlib (``pip install colddiff[plots]``).
Figures whose models are missing from the folder are skipped (and listed in the return value).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colddiff import checkpoints
from colddiff.schedules import Schedule
from colddiff.study.plotting import pyplot, save_figure, show_images

__all__ = ["FIGURES", "draw_figures"]

DDPM = ("ddpm-default", "ddpm-long", "ddpm-short")
LABELS = {"ddpm-default": "default (1e-4 to 0.02, T=1000)", "ddpm-long": "long (1e-4 to 0.004, T=5000)",
          "ddpm-short": "short (1e-4 to 0.1, T=200)", "fashion-cold": "Fashion-MNIST mixing"}


class _Study:
    """What the figures read from a study folder, loaded once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.models = sorted(p.name for p in (folder / "models").glob("*") if (p / "final.pt").exists())

    def metrics(self, model: str) -> list[dict[str, Any]]:
        path = self.folder / "models" / model / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def final(self, model: str) -> dict[str, Any]:
        return checkpoints.load(self.folder / "models" / model / "final.pt", required=("grid",))

    def evaluations(self, model: str) -> list[tuple[int, Tensor]]:
        files = sorted((self.folder / "models" / model / "evaluations").glob("epoch-*.pt"))
        loaded = [checkpoints.load(f, required=("samples", "epoch")) for f in files]
        return [(int(e["epoch"]), e["samples"]) for e in loaded]


def _schedule_axes(axis: Any, names: tuple[str, ...]) -> None:
    for name, color in zip(names, ("C0", "C1", "C2"), strict=False):
        schedule = Schedule.preset(name)
        t = torch.arange(schedule.num_timesteps + 1)
        axis.plot(t[1:], schedule.beta[1:], ":", color=color, label=f"beta_t, {name}")
        axis.plot(t, schedule.alpha_bar, "-", color=color, label=f"alpha_bar_t, {name}")
    axis.set_xlabel("t")
    axis.set_yscale("log")
    axis.legend(fontsize=7)


def fig01(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 3.5))
    _schedule_axes(axis, ("default",))
    axis.set_title("Figure 1: the default linear schedule")
    save_figure(figure, path)


def fig02(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 3.5))
    strip = study.final("ddpm-default")["forward"]
    show_images(axis, strip.flatten(0, 1), strip.shape[1],
                "Figure 2: the forward process (default schedule), t = 0 ... T")
    save_figure(figure, path)


def _reverse(study: _Study, plt: Any, path: Path, model: str, title: str) -> None:
    figure, axis = plt.subplots(figsize=(9, 3.5))
    trajectory = study.final(model)["trajectory"]
    show_images(axis, trajectory.flatten(0, 1), trajectory.shape[1], title)
    save_figure(figure, path)


def fig03(study: _Study, plt: Any, path: Path) -> None:
    _reverse(study, plt, path, "ddpm-default",
             "Figure 3: the reverse process of four samples (default model)")


def fig04(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    _schedule_axes(axis, ("default", "long", "short"))
    axis.set_title("Figure 4: the three linear schedules")
    save_figure(figure, path)


def _loss_axes(axis: Any, study: _Study, highlight: str | None) -> None:
    for model in study.models:
        if model not in DDPM and model != highlight:
            continue
        metrics = study.metrics(model)
        style = {"color": "grey", "alpha": 0.6} if highlight and model != highlight else {}
        axis.plot([m["epoch"] for m in metrics], [m["loss"] for m in metrics], label=LABELS[model], **style)
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss (MSE)")
    axis.set_yscale("log")
    axis.legend(fontsize=7)


def fig05(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    _loss_axes(axis, study, None)
    axis.set_title("Figure 5: training loss per epoch")
    save_figure(figure, path)


def fig06(study: _Study, plt: Any, path: Path) -> None:
    present = [m for m in DDPM if m in study.models]
    figure, axes = plt.subplots(len(present), 2, figsize=(14, 2.6 * len(present)), squeeze=False)
    for row, model in zip(axes, present, strict=True):
        final = study.final(model)
        forward = final["forward"]
        show_images(row[0], forward.flatten(0, 1), forward.shape[1], f"{LABELS[model]}: forward")
        trajectory = final["trajectory"]
        show_images(row[1], trajectory.flatten(0, 1), trajectory.shape[1], f"{LABELS[model]}: reverse")
    figure.suptitle("Figure 6: encoding and decoding for each schedule")
    save_figure(figure, path)


def _fmd_axes(axes: Any, study: _Study, highlight: str | None) -> None:
    band = None
    for model in study.models:
        if model not in DDPM and model != highlight:
            continue
        metrics = [m for m in study.metrics(model) if "fmd" in m]
        epochs = [m["epoch"] for m in metrics]
        style = {"color": "grey", "alpha": 0.6} if highlight and model != highlight else {}
        axes[0].plot(epochs, [m["fmd"] for m in metrics], marker=".", label=LABELS[model], **style)
        # Runs written before the metric was renamed say fmd_normalized.
        normalized = [m.get("normalized_fmd", m.get("fmd_normalized")) for m in metrics]
        axes[1].plot(epochs, normalized, marker=".", label=LABELS[model], **style)
        band = band or (metrics[-1]["fmd_baseline_mean"], metrics[-1]["fmd_baseline_std"])
    if band is not None:
        mean, std = band
        axes[0].axhspan(mean - std, mean + std, color="orange", alpha=0.3, label="test images (mean +- std)")
        axes[0].axhline(mean, color="orange")
    axes[1].axhline(0, color="orange", label="test images")
    axes[1].axhline(1, color="black", linestyle=":", label="black images")
    axes[0].set_ylabel("FMD (32 samples vs 512 test images)")
    axes[1].set_ylabel("normalised FMD")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)


def fig07(study: _Study, plt: Any, path: Path) -> None:
    figure, axes = plt.subplots(2, 1, figsize=(6, 7))
    _fmd_axes(axes, study, None)
    axes[0].set_title("Figure 7: FMD per epoch (report protocol)")
    save_figure(figure, path)


def fig08(study: _Study, plt: Any, path: Path) -> None:
    present = [m for m in DDPM if m in study.models]
    figure, axes = plt.subplots(len(present), 1, figsize=(10, 2.2 * len(present)), squeeze=False)
    for axis, model in zip(axes[:, 0], present, strict=True):
        evaluations = study.evaluations(model)
        chosen = evaluations[::10] if len(evaluations) > 10 else evaluations
        if chosen[-1][0] != evaluations[-1][0]:
            chosen.append(evaluations[-1])
        columns = torch.stack([samples[:4] for _, samples in chosen], dim=1)  # (4, epochs, C, H, W)
        show_images(axis, columns.flatten(0, 1), len(chosen),
                    f"{LABELS[model]}: epochs {', '.join(str(e) for e, _ in chosen)}")
    figure.suptitle("Figure 8: samples every 10th evaluated epoch (left: first, right: last)")
    save_figure(figure, path)


def fig09(study: _Study, plt: Any, path: Path) -> None:
    present = [m for m in DDPM if m in study.models]
    figure, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 4.3), squeeze=False)
    for axis, model in zip(axes[0], present, strict=True):
        show_images(axis, study.final(model)["grid"][:36], 6, LABELS[model])
    figure.suptitle("Figure 9: 36 samples from each model at the final epoch")
    save_figure(figure, path)


def fig10(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 3.5))
    strip = study.final("fashion-cold")["forward"]
    show_images(axis, strip.flatten(0, 1), strip.shape[1],
                "Figure 10: the Fashion-MNIST mixing forward process")
    save_figure(figure, path)


def fig11(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    _loss_axes(axis, study, "fashion-cold")
    axis.set_title("Figure 11: Fashion-MNIST model loss (DDPM models in grey)")
    save_figure(figure, path)


def fig12(study: _Study, plt: Any, path: Path) -> None:
    figure, axes = plt.subplots(2, 1, figsize=(6, 7))
    _fmd_axes(axes, study, "fashion-cold")
    axes[0].set_title("Figure 12: Fashion-MNIST model FMD (DDPM models in grey)")
    save_figure(figure, path)


def fig13(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 2.2))
    trajectory = study.final("fashion-cold")["trajectory"][:2]
    show_images(axis, trajectory.flatten(0, 1), trajectory.shape[1],
                "Figure 13: decoding two samples (Algorithm 2, fixed source)")
    save_figure(figure, path)


def fig14(study: _Study, plt: Any, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4.5))
    show_images(axis, study.final("fashion-cold")["grid"][:32], 8,
                "Figure 14: 32 samples from the Fashion-MNIST model")
    save_figure(figure, path)


#: File name and drawing function of each figure, and the models it needs.
FIGURES: dict[str, tuple[Callable[[_Study, Any, Path], None], tuple[str, ...]]] = {
    "fig01-default-schedule.png": (fig01, ()),
    "fig02-forward-gaussian.png": (fig02, ("ddpm-default",)),
    "fig03-reverse-default.png": (fig03, ("ddpm-default",)),
    "fig04-schedules.png": (fig04, ()),
    "fig05-loss.png": (fig05, ()),
    "fig06-forward-reverse.png": (fig06, ()),
    "fig07-fmd.png": (fig07, ()),
    "fig08-samples-per-epoch.png": (fig08, ()),
    "fig09-final-samples.png": (fig09, ()),
    "fig10-forward-fashion.png": (fig10, ("fashion-cold",)),
    "fig11-fashion-loss.png": (fig11, ("fashion-cold",)),
    "fig12-fashion-fmd.png": (fig12, ("fashion-cold",)),
    "fig13-reverse-fashion.png": (fig13, ("fashion-cold",)),
    "fig14-fashion-samples.png": (fig14, ("fashion-cold",)),
}


def draw_figures(folder: str | Path) -> dict[str, list[str]]:
    """Draw every figure the study folder has the models for.

    Returns:
        ``{"written": [...], "skipped": [...]}`` file names.

    Raises:
        ImportError: If matplotlib is missing (``pip install colddiff[plots]``).
    """
    plt = pyplot()
    study = _Study(Path(folder))
    out = Path(folder) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    ddpm_present = any(m in study.models for m in DDPM)
    for name, (draw, needs) in FIGURES.items():
        needs_ddpm = draw in (fig05, fig06, fig07, fig08, fig09)
        if any(m not in study.models for m in needs) or (needs_ddpm and not ddpm_present):
            skipped.append(name)
            continue
        draw(study, plt, out / name)
        written.append(name)
    return {"written": written, "skipped": skipped}
