"""``colddiff reproduce``: run a study in a folder (:mod:`colddiff.study.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from colddiff import presets, runtime
from colddiff.cli.arguments import POSITIVE, number
from colddiff.cli.errors import usage_error

__all__ = ["STUDY_OPTIONS", "add_parser", "run"]

#: The flags that change a study's options, by option name.
STUDY_OPTIONS = ("epochs", "models", "limit_train", "eval_every", "full_every", "sample_steps", "full_n",
                 "n_test", "precision", "n_samples")


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``reproduce`` to ``commands``."""
    study = commands.add_parser(
        "reproduce", help="reproduce a study: the reference study, Bansal et al.'s MNIST restoration, "
        "or the cold-generation recipes",
        description="--study report (default): train the reference study's four models, score them "
        "with FMD, and write figures 1-14, report.md and results.json into OUT. --study "
        "bansal-mnist: train Bansal et al.'s MNIST restoration models (blur, inpaint, superres), "
        "restore fully degraded test digits directly and with Algorithm 2, and write their FMD, "
        "SSIM, PSNR and RMSE, a figure per model, report.md and results.json into OUT. --study "
        "cold-generation: train each generation recipe (Gaussian, Fashion-MNIST mixing cold, with "
        "noise and with the soft loss and sampler, blur cold and hot, heat, blurring) at equal compute, "
        "and write each one's FMD ratio to real training digits and class spread, a figure of "
        "samples, report.md and results.json into OUT.")
    study.set_defaults(subparser=study, handler=run)
    study.add_argument("--study", metavar="NAME", help=f"which study: {' or '.join(presets.STUDIES)} "
                       "(default: the one OUT holds, else report)")
    study.add_argument("--out", type=Path, required=True)
    study.add_argument("--epochs", type=POSITIVE,
                       help="epochs per model (report: 100, --quick 2; bansal-mnist: 20, --quick 1; "
                       "cold-generation: 15, --quick 1)")
    study.add_argument("--models", nargs="+", metavar="MODEL", help="a subset of the study's models: "
                       + "; ".join(f"{name}: {' '.join(models)}" for name, models in presets.STUDIES.items()))
    study.add_argument("--quick", action="store_true",
                       help="CI-sized: report: 1,024 images, 2 epochs, 50 sampling steps, 128 "
                       "full-protocol samples; bansal-mnist: 512 images, 1 epoch, 64 test digits; "
                       "cold-generation: 256 images, 1 epoch, an 8-channel U-Net, 4 sampling steps, 32 "
                       "samples")
    study.add_argument("--limit-train", type=POSITIVE, metavar="N")
    report_only = study.add_argument_group("--study report only")
    report_only.add_argument("--eval-every", type=POSITIVE, metavar="K",
                             help="report-protocol FMD every K epochs (1)")
    report_only.add_argument("--full-every", type=POSITIVE, metavar="K",
                             help="full-protocol FMD every K epochs, and after the last "
                             "(10; --quick: only after the last)")
    report_only.add_argument("--sample-steps", type=POSITIVE, metavar="S",
                             help="(default: all T; cold-generation too: at most S steps per recipe)")
    report_only.add_argument("--full-n", type=number(int, 2), metavar="N",
                             help="full-protocol samples (1000)")
    bansal_only = study.add_argument_group("--study bansal-mnist only")
    bansal_only.add_argument("--n-test", type=int, metavar="N",
                             help="test digits restored and scored, 2 to 5,000 (the next N give the "
                             "real-image floor; 1000; --quick: 64)")
    bansal_only.add_argument("--precision", help="training arithmetic: " + ", ".join(runtime.PRECISIONS)
                             + " (fp32; evaluation is always fp32; cold-generation too)")
    generation_only = study.add_argument_group("--study cold-generation only")
    generation_only.add_argument("--n-samples", type=number(int, 2), metavar="N",
                                 help="samples drawn and scored per recipe (1000; --quick: 32)")
    study.add_argument("--device", default="auto")
    study.add_argument("--resume", action="store_true", help="continue an interrupted study")
    study.add_argument("--figures-only", action="store_true",
                       help="redraw figures and report.md from a finished study folder")
    study.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run (or resume, or redraw) the study in ``--out``."""
    from colddiff.study import runner

    changes = {name: getattr(args, name) for name in STUDY_OPTIONS if getattr(args, name) is not None}
    if "models" in changes:
        changes["models"] = tuple(changes["models"])
    try:
        plan = runner.prepare(args.out, args.study, changes=changes, resume=args.resume, quick=args.quick,
                              figures_only=args.figures_only, device=args.device, quiet=args.quiet)
    except ValueError as error:
        usage_error(args, error)
    if plan.resumed_from is not None and not args.quiet:
        print(f"colddiff reproduce: resuming with the options of {plan.resumed_from}"
              + (f", replacing {', '.join(plan.replaced)}" if plan.replaced else ""))
    outcome = runner.run(plan)
    print(f"colddiff reproduce: {len(outcome.written)} figures in {args.out / 'figures'}, {outcome.report}, "
          f"{args.out / 'results.json'}" + (f"; skipped {outcome.skipped}" if outcome.skipped else ""))
    return 0
