"""The reference study end to end: train its four models, evaluate, write a report.

``colddiff reproduce --out DIR`` trains DDPM with the ``default``, ``long`` and ``short`` linear
schedules and the Fashion-MNIST mixing model (all with the report CNN), scores samples with FMD
after every evaluated epoch (report protocol, 32 samples), and after training scores each model
under both protocols, times its sampler, records trajectories for the figures, and writes::

    DIR/models/<preset>/         each model's run folder (config, metrics, checkpoints)
    DIR/models/<preset>/evaluations/epoch-NNN.pt   the samples scored at that epoch
    DIR/models/<preset>/final.pt                   final samples, trajectories, scores
    DIR/figures/figNN-*.png      the report's figures 1-14 (see :mod:`colddiff.study.figures`)
    DIR/results.json, DIR/report.md

Interrupted runs resume model by model; finished models are not retrained.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from colddiff import __version__, checkpoints, data, fmd, presets
from colddiff.config import TrainConfig
from colddiff.fmd.hook import FMDHook, sample_in_batches
from colddiff.progress import progress_bar
from colddiff.study.strips import forward_strip
from colddiff.training import Trainer

__all__ = ["MODELS", "StudyOptions", "run_study", "write_report"]

#: The reference study's models, in the order of the report.
MODELS = presets.STUDIES["report"]


@dataclass
class StudyOptions:
    """How to run the study.

    Attributes:
        out: The study folder.
        models: Which of :data:`MODELS` to run.
        epochs: Epochs per model (the report: 100).
        limit_train: Training images per epoch (``None``: all 60,000).
        eval_every: Score FMD with the report protocol (and keep the samples for figure 8)
            every this many epochs.
        full_every: Also score ``full_n`` samples with the full protocol every this many epochs
            (and always after the last one).
        sample_steps: Sampling steps for evaluations (``None``: all ``T``, as the report).
        full_n: Samples for the final full-protocol FMD.
        report_batches: Batches of 32 for the final report-protocol FMD.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: Seed of every model.
        quiet: No progress output.
    """

    out: Path
    models: tuple[str, ...] = MODELS
    epochs: int = 100
    limit_train: int | None = None
    eval_every: int = 1
    full_every: int = 10
    sample_steps: int | None = None
    full_n: int = 1000
    report_batches: int = 8
    device: str = "auto"
    seed: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        if not self.models or not set(self.models) <= set(MODELS):
            raise ValueError(f"models must be among {list(MODELS)}, got {list(self.models)}")

    @classmethod
    def quick(cls, out: Path, **changes: Any) -> StudyOptions:
        """The CI-sized study: 1,024 images, 2 epochs, 50 sampling steps, 128 full-protocol samples
        scored once, after the last epoch (sampling is most of a quick study's time)."""
        values: dict[str, Any] = {"epochs": 2, "limit_train": 1024, "sample_steps": 50, "full_n": 128,
                                  "report_batches": 2}
        values.update(changes)
        values.setdefault("full_every", values["epochs"])
        return cls(out=out, **values)


def _trajectory(trainer: Trainer, n: int, frames: int, sample_steps: int | None) -> Tensor:
    """``(n, frames, C, H, W)``: ``x_t`` at ``frames`` evenly spaced moments of sampling, ending at x0."""
    sampler = trainer.sampler()
    generator = torch.Generator(trainer.device).manual_seed(trainer.config.seed)
    states: list[Tensor] = []
    final = sampler.sample(sampler.prior(n, generator=generator), sample_steps, generator=generator,
                           callback=lambda i, t, x_t, x0_hat: states.append(x_t.cpu()))
    picks = [round(k * (len(states) - 1) / (frames - 2)) for k in range(frames - 1)]
    return torch.stack([states[i] for i in picks] + [final.cpu()], dim=1)


def _finish_model(trainer: Trainer, folder: Path, options: StudyOptions, hook: FMDHook) -> dict[str, Any]:
    """Score the trained model under both protocols, time its sampler, record trajectories.

    The full-protocol score of the last epoch is the hook's when it ran in this process (it
    always scores the last epoch), else it is computed here."""
    sample_steps, progress = options.sample_steps, not options.quiet
    with progress_bar(progress, 1 + options.report_batches, f"{folder.name}: samples", unit="batch") as bar:
        start = time.perf_counter()
        grid = trainer.sample(36, sample_steps, seed=options.seed + 10_000).clamp(0, 1).cpu()
        seconds_per_36 = time.perf_counter() - start
        bar.update(1)
        batches = []
        for b in range(options.report_batches):
            batches.append(trainer.sample(32, sample_steps, seed=options.seed + 20_000 + b).clamp(0, 1).cpu())
            bar.update(1)
    report = fmd.score(torch.cat(batches), protocol="report", progress=progress)
    if hook.last_full is not None and hook.last_full[0] == trainer.epoch:
        full = hook.last_full[1]
    else:
        samples = sample_in_batches(trainer, options.full_n, sample_steps, options.seed + 30_000,
                                    progress=progress)
        full = fmd.score(samples, protocol="full", progress=progress)
    metrics = [json.loads(line) for line in trainer.metrics_path.read_text().splitlines()]
    summary = {
        "preset": folder.name, "epochs": trainer.epoch, "final_loss": metrics[-1]["loss"],
        "images_per_s": metrics[-1]["images_per_s"], "train_wall_time_s": metrics[-1]["wall_time_s"],
        "sample_steps": sample_steps or trainer.degradation.num_timesteps,
        "sampling_seconds_per_image": seconds_per_36 / 36,
        "report": report.to_dict(), "full": full.to_dict(),
    }
    forward, _ = forward_strip(trainer.degradation, data.mnist(train=True, limit=4).images, 11)
    checkpoints.save({"grid": grid, "trajectory": _trajectory(trainer, 4, 12, sample_steps),
                      "forward": forward, "summary": json.dumps(summary)}, folder / "final.pt")
    return summary


def run_study(options: StudyOptions) -> dict[str, Any]:
    """Train, evaluate and report; returns what ``results.json`` holds.

    Models whose ``final.pt`` exists are not retrained; a model with a checkpoint resumes.
    """
    out = Path(options.out)
    results: dict[str, Any] = {"study": "report", "colddiff_version": __version__, "options": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()}, "models": {}}
    for preset in options.models:
        folder = out / "models" / preset
        final = folder / "final.pt"
        if final.exists():
            results["models"][preset] = json.loads(checkpoints.load(final, required=("summary",))["summary"])
            continue
        config = TrainConfig.preset(preset, epochs=options.epochs, limit_train=options.limit_train,
                                    seed=options.seed, sample_every=0, sample_steps=options.sample_steps,
                                    precision="fp32")  # the report's numbers, on every machine
        hook = FMDHook(32, "report", options.sample_steps, options.eval_every, full_every=options.full_every,
                       full_n=options.full_n, keep=folder / "evaluations")
        # The study's own folder: an interrupted model resumes, one killed before its first
        # checkpoint starts afresh.
        trainer = Trainer(config, folder, device=options.device, quiet=options.quiet, hooks=[hook],
                          overwrite=True)
        trainer.fit(resume=trainer.checkpoint_path.exists())
        results["models"][preset] = _finish_model(trainer, folder, options, hook)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def write_report(folder: str | Path, figures: list[str]) -> Path:
    """Write ``report.md``: the results table and the figures, from ``results.json``."""
    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    options = results["options"]
    lines = [
        "# The reference study, reproduced with colddiff",
        "",
        f"colddiff {results['colddiff_version']}; {options['epochs']} epochs per model on "
        f"{options['limit_train'] or 60000} MNIST training images; evaluations with "
        f"{options['sample_steps'] or 'all T'} sampling steps. Report protocol: batches of 32 "
        f"samples against the first 512 MNIST test images ({options['report_batches']} batches "
        f"at the end); full protocol: {options['full_n']} samples against a fixed random half of "
        "the test set, with real-image baselines at the same sample size.",
        "",
        "| model | final loss | FMD (report) | normalised | FMD (full) | train baseline | FMD / baseline "
        "| confidence | sampling s/image (steps) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, summary in results["models"].items():
        report, full = summary["report"], summary["full"]
        lines.append(
            f"| {preset} | {summary['final_loss']:.4f} | {report['fmd']:.2f} +- {report['fmd_std']:.2f} "
            f"| {report['normalized_fmd']:.3f} | {full['fmd']:.2f} | {full['train_baseline']:.2f} "
            f"| {full['fmd_ratio']:.2f} | {full['confidence']:.3f} "
            f"| {summary['sampling_seconds_per_image']:.3f} ({summary['sample_steps']}) |")
    lines += ["", "Loss is the mean squared error of each model's own target (noise for DDPM, the "
              "clean image for Fashion-MNIST mixing), so losses compare only within a target.", ""]
    lines += [f"![{name}](figures/{name})\n" for name in figures]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
