"""Make the documentation's figures from the project's own code.

    python docs/make_figures.py            # into docs/assets/generated/

``degradations.png``: the three built-in forward processes on four MNIST test digits.
``samples.png``: 64 digits from the shipped ``mnist-ddpm`` model when the package has it, else
from a report CNN trained here for half a minute (32 steps, mostly noise) with 50-step DDIM.
``fashion-cold-samples.png`` / ``fashion-cold-decoding.png``: 32 samples of the shipped
``mnist-fashion-cold`` model (the report's Figure 14) and two of them decoded step by step from their
Fashion-MNIST start images (its Figure 13), when the package has that model.
``deblur.png``: 8 test digits (clean, blurred to t = T, restored directly and with Algorithm 2)
by the shipped ``mnist-deblur``, as ``colddiff restore --pretrained mnist-deblur
--from-test-set 8`` writes it, when the package has that model.
``study/``: a quick reference study (``colddiff reproduce --quick``), whose figures the
"Reproducing the studies" page shows (``--no-study`` skips it).
Needs MNIST and Fashion-MNIST under ``$COLDDIFF_DATA_DIR`` (or online), and matplotlib.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torchvision.utils import save_image

from colddiff import ColdSampler, Schedule, data, degradations, pretrained
from colddiff.cli import main as main_cli
from colddiff.config import TrainConfig
from colddiff.training import Trainer

OUT = Path(__file__).parent / "assets" / "generated"


def degradation_strips(out: Path, frames: int = 9) -> None:
    x0 = data.mnist(train=False, limit=4).images
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name in ("gaussian", "fashion_mnist", "blur"):
        deg = degradations.create(name, schedule=Schedule.preset("default"))
        if name == "blur":
            deg = degradations.create("blur", num_timesteps=20)
        source = deg.sample_source(x0, generator=generator)
        times = [round(deg.num_timesteps * k / (frames - 1)) for k in range(frames)]
        rows.append(torch.stack([deg.degrade(x0, t, source) for t in times], 1))
    grid = torch.cat(rows).flatten(0, 1).clamp(0, 1)
    save_image(grid, out / "degradations.png", nrow=frames, padding=1, pad_value=1.0)


def sample_grid(out: Path) -> None:
    if "mnist-ddpm" in pretrained.available():
        samples = pretrained.load("mnist-ddpm").sample(64, seed=0)
        save_image(samples.clamp(0, 1), out / "samples.png", nrow=16, padding=1, pad_value=1.0)
        return
    with tempfile.TemporaryDirectory() as run:
        config = TrainConfig.preset("ddpm-default", epochs=1, limit_train=4096, sample_every=0)
        trainer = Trainer(config, run, quiet=True)
        trainer.fit()
        sampler = ColdSampler(trainer.sampling_denoiser(), source="estimate")
        x_T = sampler.prior(64, generator=torch.Generator().manual_seed(0))
        samples = sampler.sample(x_T, sample_steps=50)
    save_image(samples.clamp(0, 1), out / "samples.png", nrow=16, padding=1, pad_value=1.0)


def fashion_cold_figures(out: Path, frames: int = 11) -> None:
    if "mnist-fashion-cold" not in pretrained.available():
        return
    model = pretrained.load("mnist-fashion-cold")
    samples = model.sample(32, seed=0)
    save_image(samples.clamp(0, 1), out / "fashion-cold-samples.png", nrow=8, padding=1, pad_value=1.0)
    sampler, steps = model.sampler(), model.config.sample_steps
    keep = {round(k * (steps - 1) / (frames - 2)) for k in range(frames - 1)}
    shown: list[torch.Tensor] = []
    x_T = sampler.prior(2, generator=torch.Generator().manual_seed(1))
    last = sampler.sample(x_T, steps, callback=lambda i, t, x_t, x0_hat: shown.append(x_t.clone())
                          if i in keep else None)
    grid = torch.stack([*shown, last], 1).flatten(0, 1)
    save_image(grid.clamp(0, 1), out / "fashion-cold-decoding.png", nrow=len(shown) + 1, padding=1,
               pad_value=1.0)


def deblur_figure(out: Path) -> None:
    if "mnist-deblur" in pretrained.available():
        main_cli(["restore", "--pretrained", "mnist-deblur", "--from-test-set", "8", "--device", "cpu",
                  "--out", str(out / "deblur.png")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-study", action="store_true", help="skip the quick reference study")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    degradation_strips(args.out)
    sample_grid(args.out)
    fashion_cold_figures(args.out)
    deblur_figure(args.out)
    if not args.no_study:
        study = args.out / "study"
        if (study / "results.json").exists():
            main_cli(["reproduce", "--out", str(study), "--figures-only"])
        else:
            main_cli(["reproduce", "--quick", "--out", str(study), "--quiet", "--resume"])
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
