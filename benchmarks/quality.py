"""Quality per minute: the report CNN against colddiff's U-Net at an equal training budget.

    python -m benchmarks.quality --minutes 30 --out runs/quality --json quality.json
    python -m benchmarks.quality --pretrained mnist-ddpm --json card-scores.json   # score shipped models
    python -m benchmarks.quality --quick                                           # a smoke test
    python -m benchmarks.quality --minutes 30 --jobs 2   # both networks at once, one core each

Each network is trained with its preset (``ddpm-default``: the report CNN, linear schedule,
noise prediction; ``mnist-unet``: U-Net, cosine schedule, v-prediction, EMA) for the same
wall-clock budget on all of MNIST, then sampled two ways: 1000-step ancestral sampling
(``DDPMSampler``) and 50-step strided deterministic sampling (``ColdSampler`` with a re-estimated
source, i.e. DDIM). For each: the report protocol's normalised FMD (mean over 8 batches of 32),
the full protocol's FMD against the training-image baseline (1,000 samples), the classifier's
confidence and class histogram, and the sampling time. Runs resume: a finished training is
reused, so a long benchmark can span sessions.

With ``--jobs N`` the networks train side by side in N worker processes, each limited to its
share of the CPU cores (``--threads``), so both get the same machine for the same wall time; on
a small CPU this is also faster overall than one process using every core. The ``comparison``
section gives, for each sampler, how many times lower the U-Net's FMD is than the CNN's
(``--nets unet-eps unet-linear`` measure two pieces of the recipe the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import emit, machine
from colddiff import ColdSampler, DDPMSampler, Sampler, Schedule, checkpoints, fmd, pretrained
from colddiff.config import TrainConfig
from colddiff.degradations.gaussian import GaussianNoise
from colddiff.training import Trainer

#: The networks and recipes this benchmark trains: a preset and the fields changed from it. The
#: last two change one piece of the U-Net recipe each, to measure it: the noise target instead of
#: v-prediction, and the reference study's linear schedule instead of the cosine one.
NETS: dict[str, tuple[str, dict[str, Any]]] = {
    "cnn": ("ddpm-default", {}),
    "unet": ("mnist-unet", {}),
    "unet-eps": ("mnist-unet", {"predict": "eps"}),
    "unet-linear": ("mnist-unet", {"schedule": Schedule.preset("default").spec()}),
}


def samplers_for(own: Sampler, strided_steps: int, full_steps: int | None,
                 full: bool = True) -> dict[str, tuple[Sampler, int]]:
    """The samplers to score, by name, with their numbers of steps.

    For Gaussian noise: 50-step strided deterministic sampling (Algorithm 2 with a re-estimated
    source, i.e. DDIM) and 1000-step ancestral sampling (DDPM). For any other degradation the
    model's own sampler ``own`` (for ``mnist-fashion-cold``, the report's Algorithm 2 from a
    Fashion-MNIST test image) at both lengths.
    """
    denoiser = own.denoiser
    full_steps = full_steps or denoiser.num_timesteps
    if isinstance(denoiser.degradation, GaussianNoise):
        chosen = {f"strided-{strided_steps}": (ColdSampler(denoiser, source="estimate"), strided_steps),
                  f"ancestral-{full_steps}": (DDPMSampler(denoiser), full_steps)}
    else:
        chosen = {f"strided-{strided_steps}": (own, strided_steps), f"full-{full_steps}": (own, full_steps)}
    return chosen if full else dict(list(chosen.items())[:1])


def draw(sampler: Sampler, steps: int, n: int, seed: int, cache: Path | None) -> tuple[Tensor, float]:
    """``n`` samples in batches of 250 and the seconds they took.

    With ``cache``, each finished batch is saved there (atomically, with the generator's state
    after it) and reused by a later call, so hours of 1000-step sampling survive interruptions.
    """
    generator = torch.Generator().manual_seed(seed)
    batches, seconds = [], 0.0
    for index, done in enumerate(range(0, n, 250)):
        path = cache / f"batch-{index:03d}.pt" if cache else None
        if path is not None and path.exists():
            saved = checkpoints.load(path, required=("samples", "seconds", "generator"))
            generator.set_state(saved["generator"])
            batches.append(saved["samples"])
            seconds += saved["seconds"]
            continue
        start = time.perf_counter()
        batch = sampler.sample(sampler.prior(min(250, n - done), generator=generator), steps,
                               generator=generator).clamp(0, 1)
        elapsed = time.perf_counter() - start
        if path is not None:
            checkpoints.save({"samples": batch, "seconds": elapsed, "generator": generator.get_state()}, path)
        batches.append(batch)
        seconds += elapsed
    return torch.cat(batches), seconds


def evaluate(samplers: dict[str, tuple[Sampler, int]], n_full: int, n_report: int, seed: int = 0,
             cache: Path | None = None) -> dict[str, Any]:
    """Each sampler's scores: report and full protocol, confidence, classes, seconds per image.

    ``cache`` (a folder per model state) keeps the drawn batches, see :func:`draw`.
    """
    results = {}
    for name, (sampler, steps) in samplers.items():
        samples, seconds = draw(sampler, steps, n_full, seed, cache / f"{name}-seed{seed}" if cache else None)
        report = fmd.score(samples[:n_report], protocol="report")
        full = fmd.score(samples, protocol="full")
        results[name] = {
            "sample_steps": steps, "sampling_seconds_per_image": seconds / n_full,
            "normalized_fmd_report": report.normalized_fmd, "normalized_fmd_report_std": report.fmd_std
            / (report.black_fmd - report.baseline_mean), "report_batches": n_report // 32,
            "fmd_full": full.fmd, "train_baseline": full.train_baseline, "fmd_ratio": full.fmd_ratio,
            "n_full": n_full, "confidence": full.confidence, "class_histogram": full.class_histogram,
            "class_fractions": [round(c / n_full, 4) for c in full.class_histogram],
        }
    return results


def train(net: str, minutes: float, out: Path, quick: bool) -> dict[str, Any]:
    """Train ``net`` with its preset for ``minutes`` (resuming a previous run in ``out``)."""
    preset, changes = NETS[net]
    config = TrainConfig.preset(preset, **changes, epochs=1000, max_minutes=minutes, sample_every=0,
                                checkpoint_every=200, limit_train=2048 if quick else None)
    if net.startswith("unet") and quick:
        config = config.replace(ema_start=0)
    trainer = Trainer(config, out, quiet=True)
    trainer.fit(resume=trainer.checkpoint_path.exists())
    lines = [json.loads(line) for line in trainer.metrics_path.read_text().splitlines()]
    return {"trainer": trainer, "minutes": minutes, "optimiser_steps": trainer.step,
            "epochs": round(trainer.step * config.batch_size / (config.limit_train or 60_000), 2),
            "images_per_s": round(trainer.step * config.batch_size / lines[-1]["wall_time_s"], 1),
            "final_loss": lines[-1]["loss"],
            "wall_time_s": lines[-1]["wall_time_s"], "cpu_time_s": lines[-1]["cpu_time_s"],
            "preset": preset, "changes": changes, "threads": torch.get_num_threads()}


def compare(results: dict[str, Any]) -> dict[str, Any]:
    """Each other network's scores divided by the U-Net's, per sampler (above 1: the U-Net is
    better), e.g. ``comparison["cnn"]["strided-50"]["fmd_full_over_unet"]``.

    A ratio is ``None`` where the U-Net's score is not positive (a normalised FMD at or below
    the real-image baseline), since the quotient would mean nothing.
    """
    if "unet" not in results:
        return {}
    unet = results["unet"]["scores"]
    return {net: {sampler: {f"{key}_over_unet": scores[sampler][key] / unet[sampler][key]
                            if unet[sampler][key] > 0 else None
                            for key in ("fmd_full", "normalized_fmd_report")}
                  for sampler in sorted(scores.keys() & unet.keys())}
            for net, scores in ((net, result["scores"]) for net, result in results.items() if net != "unet")}


def run_workers(args: argparse.Namespace, passthrough: list[str]) -> dict[str, Any]:
    """Run each network in its own worker process, ``args.jobs`` at a time; their results."""
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    results: dict[str, Any] = {}
    pending = list(args.nets)
    while pending:
        batch, pending = pending[:args.jobs], pending[args.jobs:]
        workers = {net: subprocess.Popen([sys.executable, "-m", "benchmarks.quality", "--nets", net,
                                          "--threads", str(threads), "--out", str(args.out),
                                          "--json", str(args.out / f"{net}.json"), *passthrough],
                                         stdout=subprocess.DEVNULL)
                   for net in batch}
        for net, worker in workers.items():
            if worker.wait() != 0:
                raise SystemExit(f"the {net} worker failed (exit status {worker.returncode})")
            results[net] = json.loads((args.out / f"{net}.json").read_text())["results"][net]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per network")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["cnn", "unet"],
                        help="what to train (default: cnn unet; unet-eps and unet-linear measure the recipe)")
    parser.add_argument("--pretrained", nargs="+", default=[], metavar="NAME",
                        help="score shipped models instead of training")
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--strided-only", action="store_true",
                        help="skip 1000-step sampling (the slow part)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train and score this many networks at once, each in its own process")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per process (default: all cores divided by --jobs)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 0:
        parser.error(f"--jobs must be at least 1 and --threads at least 0, got {args.jobs} and "
                     f"{args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)

    n_full, n_report, full_steps, strided = (64, 64, 100, 10) if args.quick else (1000, 256, None, 50)
    minutes = 0.2 if args.quick else args.minutes
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "results": {}}
    if args.jobs > 1 and not args.pretrained:
        args.out.mkdir(parents=True, exist_ok=True)
        passthrough = ["--minutes", str(args.minutes)] + ["--quick"] * args.quick \
            + ["--strided-only"] * args.strided_only
        report["results"] = run_workers(args, passthrough)
    elif args.pretrained:
        for name in args.pretrained:
            model = pretrained.load(name)
            samplers = samplers_for(model.sampler(), strided, full_steps, not args.strided_only)
            cache = args.out / "pretrained" / f"{name}-{model.card['sha256'][:12]}"
            report["results"][name] = {"scores": evaluate(samplers, n_full, n_report, cache=cache)}
    else:
        for net in args.nets:
            trained = train(net, minutes, args.out / net, args.quick)
            trainer = trained.pop("trainer")
            samplers = samplers_for(trainer.sampler(), strided, full_steps, not args.strided_only)
            cache = args.out / net / "samples" / f"step{trainer.step}"
            trained["scores"] = evaluate(samplers, n_full, n_report, cache=cache)
            report["results"][net] = trained
    report["comparison"] = compare(report["results"])
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
