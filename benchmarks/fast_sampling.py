"""Fast sampling: Fréchet distance against network calls, for each sampler and step spacing.

    python -m benchmarks.fast_sampling --json fast-sampling.json     # the whole table (hours on a CPU)
    python -m benchmarks.fast_sampling --n 100 --calls 10 --spacings trailing logsnr  # one small point
    python -m benchmarks.fast_sampling --quick                       # a smoke test (CI)
    python -m benchmarks.fast_sampling --device cuda --json fast-sampling.json   # on a GPU
    python -m benchmarks.fast_sampling --samplers dpmsolver++2-sde --sde-etas 1 0.5 0.35 --calls 10

For a shipped model (``--pretrained``, default ``mnist-ddpm``) and each sampler (``--samplers``:
DDIM, DPM-Solver++ 2M and 3M, UniPC), spacing (``--spacings``: trailing, logsnr, karras,
quadratic, and ``tuned``: the grids ``colddiff tune-steps`` stored in the card, each with its own
sampler, one row; or explicit steps ``1000,850,...,0``, at their own number of calls) and
number of network calls (``--calls``: 5, 10, 20, 50), this draws ``--n`` samples (default
1,000, seed ``--seed``, in batches of 250) and scores them with the full FMD protocol
(``colddiff.fmd.score(samples, protocol="full")``): ``fmd_ratio`` is the Fréchet distance to
MNIST test digits divided by that of real training digits at the same ``n`` (1.0 is as good as
real data). Each row also gives the classifier's class histogram, the seconds per image and
the calls actually made: a rounded grid can repeat a step, and repeats are dropped (on the
cosine schedule of ``mnist-ddpm``, ``logsnr`` and ``karras`` crowd their steps next to ``T``).
The SDE solver (``dpmsolver++2-sde``) gets one row per noise share ``--sde-etas`` (its ``eta``:
1 the full SDE, the default; 0 the ODE).
The baseline row is the model's own sampler with the card's number of steps (``mnist-ddpm``:
50 steps of ancestral sampling), the quality the few-step samplers are measured against.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import emit, machine
from colddiff import Sampler, fmd, pretrained, samplers
from colddiff.cli.arguments import spacing_value
from colddiff.config import to_unit_range
from colddiff.runtime import resolve_device

#: The samplers by the name used here: a registered sampler and its options.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("ddim", {}),
    "dpmsolver++2": ("dpmsolver++", {"order": 2}),
    "dpmsolver++3": ("dpmsolver++", {"order": 3}),
    "dpmsolver++3-diffusers": ("dpmsolver++", {"order": 3, "variant": "diffusers"}),
    "dpmsolver++2-sde": ("dpmsolver++", {"order": 2, "sde": True}),
    "unipc": ("unipc", {"order": 2}),
    "unipc3": ("unipc", {"order": 3}),
}
DEFAULT_SAMPLERS = ["ddim", "dpmsolver++2", "dpmsolver++3", "unipc"]
#: The sampler that takes ``--sde-etas``.
SDE = "dpmsolver++2-sde"
#: The spacing that stands for a model's tuned grids (``colddiff tune-steps``), and its row's name.
TUNED, TUNED_ROW = "tuned", "ddim"
SPACINGS = ["trailing", "logsnr", "karras", "quadratic", TUNED]
CALLS = [5, 10, 20, 50]
#: ``--quick``: four configurations, a few samples.
QUICK_N, QUICK_CONFIGS = 16, [("ddim", "trailing", 5), ("dpmsolver++3", "logsnr", 5),
                              (f"{SDE} eta=0.35", "trailing", 5), ("ddim", TUNED, 10)]


def draw(sampler: Sampler, steps: int | None, n: int, seed: int, model: pretrained.Pretrained,
         batch: int = 250) -> tuple[Tensor, float, int]:
    """``n`` samples in ``[0, 1]`` (on the CPU), the seconds they took and the network calls per
    image; drawn on the model's device, from a generator there."""
    device = next(model.denoiser.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with warnings.catch_warnings():  # repeated steps are counted below instead
        warnings.simplefilter("ignore", UserWarning)
        calls = len(sampler.timesteps(steps)) - 1
        start, batches = time.perf_counter(), []
        for done in range(0, n, batch):
            x_T = sampler.prior(min(batch, n - done), generator=generator)
            batches.append(sampler.sample(x_T, steps, generator=generator).cpu())
    seconds = time.perf_counter() - start
    return to_unit_range(torch.cat(batches), model.config).clamp(0, 1), seconds, calls


def score(samples: Tensor) -> dict[str, Any]:
    """The full protocol's scores of ``samples``."""
    result = fmd.score(samples, protocol="full")
    return {"fmd_ratio": result.fmd_ratio, "fmd": result.fmd, "train_baseline": result.train_baseline,
            "confidence": result.confidence, "class_histogram": result.class_histogram}


def run(model: pretrained.Pretrained, name: str, spacing: str, calls: int, n: int,
        seed: int) -> dict[str, Any] | None:
    """One row of the table: ``name`` (a key of :data:`SAMPLERS`, for the SDE solver with its
    ``eta`` after it, as ``"dpmsolver++2-sde eta=0.5"``) with ``spacing`` at ``calls`` network
    calls (``"tuned"``: the card's tuned grid for ``calls`` with its own sampler, ``name`` being
    ignored; ``None`` where the card has none)."""
    if spacing == TUNED:
        tuned = model.tuned_grid(calls)
        if tuned is None:
            return None
        sampler = model.sampler(tuned["sampler"], **tuned["sampler_kwargs"])
        steps = None if isinstance(tuned["sampler_kwargs"]["spacing"], list) else calls
        options = tuned["sampler_kwargs"]
        base = tuned["sampler"] + str(options.get("order", "")) + ("-sde" if options.get("sde") else "")
        name = row_name(base, options.get("eta", 1.0))
    else:
        key, _, eta = name.partition(" eta=")
        registered, options = SAMPLERS[key]
        options = {**options, "eta": float(eta)} if eta else options
        grid = spacing_value(spacing)
        sampler = model.sampler(registered, **options, spacing=grid)
        steps = None if isinstance(grid, list) else calls
    samples, seconds, made = draw(sampler, steps, n, seed, model)
    row = {"sampler": name, "spacing": spacing, "calls_requested": calls, "calls": made, "n": n,
           "seconds_per_image": seconds / n, **score(samples)}
    print(f"{name:<24} {spacing:<10} {made:>3} calls: FMD ratio {row['fmd_ratio']:.3f} "
          f"({row['seconds_per_image'] * 1000:.0f} ms/image)", file=sys.stderr, flush=True)
    return row


def row_name(sampler: str, eta: float) -> str:
    """A row's sampler name: ``sampler``, with ``" eta=E"`` after it for the SDE solver's partial
    noise (``eta`` other than 1), as :func:`run` reads it back."""
    return sampler if eta == 1 else f"{sampler} eta={eta:g}"


def _calls(spacing: str, calls: list[int]) -> list[int]:
    """The call counts to run ``spacing`` at: an explicit grid's own, else ``calls``."""
    grid = spacing_value(spacing)
    return [len(grid) - 1] if isinstance(grid, list) else calls


def table(rows: list[dict[str, Any]], calls: list[int]) -> str:
    """The FMD ratios as a Markdown table: a row per sampler and spacing, a column per call count."""
    lines = ["| sampler | spacing | " + " | ".join(f"{c} calls" for c in calls) + " |",
             "| --- | --- |" + " --- |" * len(calls)]
    for key in dict.fromkeys((r["sampler"], r["spacing"]) for r in rows):
        found = {r["calls_requested"]: r for r in rows if (r["sampler"], r["spacing"]) == key}
        cells = ["" if c not in found else f"{found[c]['fmd_ratio']:.3f}"
                 + (f" ({found[c]['calls']})" if found[c]["calls"] != c else "") for c in calls]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fast_sampling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default="mnist-ddpm", help="the shipped model (default mnist-ddpm)")
    parser.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=DEFAULT_SAMPLERS)
    parser.add_argument("--spacings", nargs="+", default=SPACINGS,
                        help=f"{', '.join(samplers.SPACINGS)}, {TUNED} (the card's tuned grids, from "
                        f"colddiff tune-steps, with their own sampler) or explicit steps 1000,850,...,0 "
                        f"(default: {' '.join(SPACINGS)})")
    parser.add_argument("--sde-etas", nargs="+", type=float, default=[1.0], metavar="ETA",
                        help="the noise shares eta of dpmsolver++2-sde, a row each (default 1: the SDE)")
    parser.add_argument("--calls", nargs="+", type=int, default=CALLS,
                        help="network calls per image (default 5 10 20 50)")
    parser.add_argument("--n", type=int, default=1000, help="samples per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the model's own sampler")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--quick", action="store_true", help="four configurations, a few samples")
    args = parser.parse_args(argv)
    if args.n < 2 or min(args.calls) < 1:
        parser.error(f"--n must be at least 2 and --calls at least 1, got {args.n} and {args.calls}")
    for spacing in args.spacings:
        try:
            grid = spacing_value(spacing)
        except argparse.ArgumentTypeError as error:
            parser.error(f"--spacings: {error}")
        if isinstance(grid, list) and len(grid) < 2:
            parser.error(f"--spacings: an explicit grid needs at least two steps (e.g. 1000,0), "
                         f"got {spacing!r}")
        if not isinstance(grid, list) and grid not in [*samplers.SPACINGS, TUNED]:
            parser.error(f"--spacings takes {', '.join(samplers.SPACINGS)}, {TUNED} or steps like "
                         f"1000,500,0, got {spacing!r}")
    if not all(0 <= eta <= 1 for eta in args.sde_etas):
        parser.error(f"--sde-etas must be in [0, 1], got {args.sde_etas}")
    if args.sde_etas != [1.0] and SDE not in args.samplers:
        parser.error(f"--sde-etas applies to the sampler {SDE}: add it to --samplers")

    device = resolve_device(args.device)
    model = pretrained.load(args.pretrained, device)
    warm_up = model.sampler()
    warm_up.sample(warm_up.prior(2, generator=torch.Generator(device=device).manual_seed(0)), 1)  # not timed
    n = QUICK_N if args.quick else args.n
    names = [row_name(name, eta) for name in args.samplers
             for eta in (args.sde_etas if name == SDE else [1.0])]
    configs = QUICK_CONFIGS if args.quick else [(s, p, c) for s in dict.fromkeys(names) for p in args.spacings
                                                   for c in _calls(p, args.calls)]
    report: dict[str, Any] = {"machine": machine(), "model": args.pretrained, "n": n, "seed": args.seed,
                              "quick": args.quick}
    if not (args.quick or args.no_baseline):
        steps = model.config.sample_steps
        samples, seconds, made = draw(model.sampler(), steps, n, args.seed, model)
        report["baseline"] = {"sampler": model.config.sampler, "sampler_kwargs": model.config.sampler_kwargs,
                              "calls": made, "n": n, "seconds_per_image": seconds / n, **score(samples)}
        print(f"baseline ({model.config.sampler}, {made} calls): FMD ratio "
              f"{report['baseline']['fmd_ratio']:.3f}", file=sys.stderr, flush=True)
    configs = list(dict.fromkeys((TUNED_ROW if spacing == TUNED else name, spacing, calls)
                                 for name, spacing, calls in configs))  # one tuned row per call count
    rows = [row for name, spacing, calls in configs
            if (row := run(model, name, spacing, calls, n, args.seed)) is not None]
    report["results"] = rows
    print(table(rows, sorted({r["calls_requested"] for r in rows})), file=sys.stderr)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
